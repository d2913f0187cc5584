// Small pieces the runtime pages share: status and level badges, the "choose a project" notice,
// the steps list, a JSON text editor with its parse error, the live-connection indicator.
import type { ReactNode } from "react";

import { Empty } from "../../components/ui";
import { useApi } from "../../hooks";
import { useSession } from "../../session";
import type { List, Step } from "./runtime";
import { parseJson, readablePath } from "./schema";
import { describeStatus } from "./socket";
import type { SocketStatus } from "./socket";
import "./run.css";

const STATUS_CLASS: Record<string, string> = {
  ok: "ok",
  success: "ok",
  completed: "ok",
  error: "error",
  failed: "error",
  dead: "error",
  timeout: "error",
  running: "amber",
  retrying: "amber",
  pending: "amber",
};

export function StatusBadge({ status }: { status: string | null | undefined }) {
  const text = status ?? "unknown";
  return <span className={`badge ${STATUS_CLASS[text] ?? ""}`}>{text}</span>;
}

export function LevelBadge({ level }: { level: string | undefined }) {
  const text = level ?? "info";
  const cls = text === "error" ? "error" : text === "warn" ? "warn" : text === "debug" ? "debug" : "info";
  return <span className={`badge level-${cls} ${cls === "error" || cls === "warn" ? cls : ""}`}>{text}</span>;
}

export function HttpStatus({ status }: { status: number }) {
  const cls = status < 300 ? "ok" : status < 500 ? "warn" : "error";
  return <span className={`badge http ${cls}`}>{status}</span>;
}

/** The runtime base and tenant, or a notice asking to choose where to work. */
export function useRuntime(): { runtime: string | null; tenant: string | null; missing: ReactNode } {
  const session = useSession();
  const { runtime, place } = session;
  const missing =
    runtime && place.tenant ? null : (
      <Empty>Choose a tenant, project and environment at the top to see this page.</Empty>
    );
  return { runtime: place.tenant ? runtime : null, tenant: place.tenant, missing };
}

/** Every step of the project (`GET R/steps`). */
export function useSteps(runtime: string | null, tenant: string | null) {
  return useApi<List<Step>>(runtime ? `${runtime}/steps` : null, { tenant });
}

/** A JSON text box: parses as you type and says what is wrong. */
export function JsonEditor(props: {
  id: string;
  label: string;
  value: string;
  onChange: (text: string) => void;
  rows?: number;
  hint?: string;
}) {
  const parsed = parseJson(props.value);
  const errorId = `${props.id}-error`;
  return (
    <div className="field">
      <label htmlFor={props.id}>
        <span>{props.label}</span>
      </label>
      <textarea
        id={props.id}
        className="json-editor"
        value={props.value}
        rows={props.rows ?? 10}
        spellCheck={false}
        autoCapitalize="off"
        autoCorrect="off"
        aria-invalid={!parsed.ok || undefined}
        aria-describedby={!parsed.ok ? errorId : undefined}
        onChange={(e) => props.onChange(e.target.value)}
      />
      {props.hint ? <small className="muted">{props.hint}</small> : null}
      {!parsed.ok ? (
        <small id={errorId} className="field-error">
          Not valid JSON: {parsed.error}
        </small>
      ) : null}
    </div>
  );
}

export function LiveStatus({ status }: { status: SocketStatus }) {
  return (
    <span className={`live live-${status.state}`} role="status">
      <span className="live-dot" aria-hidden="true" />
      {describeStatus(status)}
    </span>
  );
}

export function ProblemList({
  problems,
  title,
  urgent = true,
}: {
  problems: { path: string; message: string }[];
  title: string;
  urgent?: boolean; // false: advice shown as it is typed, not an alert
}) {
  if (!problems.length) return null;
  return (
    <div className="problems" role={urgent ? "alert" : "status"}>
      <strong>{title}</strong>
      <ul>
        {problems.map((p, i) => (
          <li key={`${p.path}-${i}`}>
            <code>{readablePath(p.path)}</code> {p.message}
          </li>
        ))}
      </ul>
    </div>
  );
}
