// Contract rules the page needs before the server says them: the status machine
// (draft → active → expired | terminated, one step at a time) and the value's decimal format.
import { Action } from "../../components/ui";
import { Confirm } from "./parts";

export type ContractStatus = "draft" | "active" | "expired" | "terminated";

export const CONTRACT_STATUSES: ContractStatus[] = ["draft", "active", "expired", "terminated"];

const NEXT: Record<ContractStatus, ContractStatus[]> = {
  draft: ["active"],
  active: ["expired", "terminated"],
  expired: [],
  terminated: [],
};

/** The states a contract in `status` may move to next. */
export function nextStatuses(status: string): ContractStatus[] {
  return NEXT[status as ContractStatus] ?? [];
}

const VERB: Record<ContractStatus, string> = {
  draft: "Back to draft",
  active: "Activate",
  expired: "Mark expired",
  terminated: "Terminate",
};

/** A decimal string as the API takes it: no sign, no exponent, ≤ 18 + 6 digits. */
export const DECIMAL = /^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$/;
export const CURRENCY = /^[A-Z]{3}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

export type ContractForm = {
  title: string;
  counterparty: string;
  value: string;
  currency: string;
  start_date: string;
  end_date: string;
};

/** What is wrong with a contract form, by field (empty: nothing). */
export function contractProblems(form: ContractForm): Partial<Record<keyof ContractForm, string>> {
  const problems: Partial<Record<keyof ContractForm, string>> = {};
  if (!form.title.trim()) problems.title = "A title is needed.";
  if (!form.counterparty.trim()) problems.counterparty = "A counterparty is needed.";
  if (!DECIMAL.test(form.value.trim()))
    problems.value = "A non-negative decimal such as 12500.00: no sign, no leading zeros, at most 6 decimals.";
  if (!CURRENCY.test(form.currency.trim())) problems.currency = "Three capital letters (ISO 4217), such as EUR.";
  if (!DATE.test(form.start_date)) problems.start_date = "A start date is needed.";
  if (form.end_date && !DATE.test(form.end_date)) problems.end_date = "A date, or empty for open-ended.";
  else if (form.end_date && form.start_date && form.end_date < form.start_date)
    problems.end_date = "The end date cannot be before the start date.";
  return problems;
}

/** The buttons for the allowed next states only; final moves ask for confirmation. */
export function Transitions(props: {
  status: string;
  allowed: boolean;
  why?: string;
  busy?: boolean;
  onMove: (to: ContractStatus) => void;
}) {
  const next = nextStatuses(props.status);
  if (!next.length) {
    return <p className="muted small">This contract is {props.status}: a final state, it moves no further.</p>;
  }
  return (
    <div className="gv-actions" role="group" aria-label="Change status">
      {next.map((to) =>
        to === "active" ? (
          <Action
            key={to}
            kind="primary"
            allowed={props.allowed}
            why={props.why}
            busy={props.busy}
            onClick={() => props.onMove(to)}
          >
            {VERB[to]}
          </Action>
        ) : (
          <Confirm
            key={to}
            label={VERB[to]}
            question={`${VERB[to]}? This cannot be undone.`}
            kind={to === "terminated" ? "danger" : "plain"}
            allowed={props.allowed}
            why={props.why}
            busy={props.busy}
            onConfirm={() => props.onMove(to)}
          />
        ),
      )}
    </div>
  );
}
