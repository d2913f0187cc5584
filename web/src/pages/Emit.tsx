// Emit an event: pick a topic some step subscribes to, write its data as JSON (checked against
// every subscriber's input schema before it can be sent), optionally give it an id (which makes
// the emit idempotent), and follow the trace it starts.
import { useMemo, useState } from "react";
import type { FormEvent } from "react";

import { api } from "../api";
import { Empty, ErrorBox, Field, Loading, Page, Submit } from "../components/ui";
import { Link } from "../router";
import { useSubmit } from "../hooks";
import { useSession } from "../session";
import { JsonEditor, ProblemList, useRuntime, useSteps } from "./run/parts";
import { hashQuery, topics } from "./run/runtime";
import { initialValue, parseJson, validate } from "./run/schema";
import type { Problem } from "./run/schema";

type Accepted = { event_id: string; trace_id: string };

export default function EmitPage(_props: { params: Record<string, string> }) {
  const session = useSession();
  const { runtime, tenant, missing } = useRuntime();
  const steps = useSteps(runtime, tenant);
  const all = useMemo(() => topics(steps.data?.items ?? []), [steps.data]);
  const [chosen, setChosen] = useState(() => hashQuery().topic ?? "");
  const entry = all.find((t) => t.topic === chosen) ?? all[0] ?? null;
  // The data as typed for the chosen topic; a topic not typed for yet starts from its schema.
  const [draft, setDraft] = useState<{ topic: string; text: string } | null>(null);
  const [eventId, setEventId] = useState("");
  const [group, setGroup] = useState("");
  const { run, busy, error, setError } = useSubmit();
  const [accepted, setAccepted] = useState<(Accepted & { topic: string }) | null>(null);

  const withSchema = (entry?.subscribers ?? []).filter((s) => s.input_schema);
  const fifo = (entry?.subscribers ?? []).some((s) => s.queue?.type === "fifo");

  const fromSchema = () => {
    const schema = withSchema[0]?.input_schema;
    return JSON.stringify(schema ? initialValue(schema) : {}, null, 2);
  };
  const text = entry && draft?.topic === entry.topic ? draft.text : fromSchema();
  const setText = (next: string) => {
    if (entry) setDraft({ topic: entry.topic, text: next });
  };
  const fill = () => setText(fromSchema());

  const parsed = parseJson(text);
  const checks: { step: string; problems: Problem[] }[] =
    parsed.ok && parsed.value !== undefined
      ? withSchema
          .map((s) => ({ step: s.name, problems: validate(s.input_schema!, parsed.value) }))
          .filter((c) => c.problems.length > 0)
      : [];

  if (missing) return <Page title="Emit an event">{missing}</Page>;

  const allowed = session.can("event.publish");
  const blocked = !entry
    ? "choose a topic"
    : !parsed.ok
      ? "the data is not valid JSON"
      : parsed.value === undefined
        ? "write the event's data (null for none)"
        : checks.length
          ? "the data does not match a subscriber's schema"
          : null;

  async function submit(event?: FormEvent) {
    event?.preventDefault();
    if (!runtime || !entry || blocked || !parsed.ok) return;
    const { topic } = entry;
    const data = parsed.value;
    await run(async () => {
      const body: Record<string, unknown> = { topic, data };
      if (eventId.trim()) body.id = eventId.trim();
      if (fifo && group.trim()) body.messageGroupId = group.trim();
      const answer = await api<Accepted>(`${runtime}/events`, { method: "POST", body, tenant });
      setAccepted({ ...answer, topic });
    });
  }

  return (
    <Page title="Emit an event">
      <ErrorBox error={steps.error} />
      <Loading when={steps.loading && !steps.data} />
      {steps.data && !all.length ? <Empty>No step of this project subscribes to a topic.</Empty> : null}
      {entry ? (
        <form className="run-form" onSubmit={(e) => void submit(e)} aria-label="Event">
          <div className="field">
            <label htmlFor="emit-topic">
              <span>Topic</span>
            </label>
            <select
              id="emit-topic"
              value={entry.topic}
              onChange={(e) => {
                setChosen(e.target.value);
                setError(null);
                setAccepted(null);
              }}
            >
              {all.map((t) => (
                <option key={t.topic} value={t.topic}>
                  {t.topic} → {t.subscribers.map((s) => s.name).join(", ")}
                </option>
              ))}
            </select>
            <small className="muted">
              Subscribers:{" "}
              {entry.subscribers.map((s, i) => (
                <span key={s.name}>
                  {i ? ", " : ""}
                  <strong>{s.name}</strong> ({s.input_schema ? "checks its input" : "no input schema"}
                  {s.queue?.type === "fifo" ? ", fifo" : ""})
                </span>
              ))}
            </small>
          </div>
          <JsonEditor
            id="emit-data"
            label="Data (JSON)"
            value={text}
            onChange={(next) => {
              setText(next);
              setAccepted(null);
            }}
            rows={12}
          />
          <div className="row">
            <button type="button" className="btn plain" onClick={fill} disabled={!withSchema.length}>
              {withSchema.length ? "Start from the schema" : "No schema to start from"}
            </button>
          </div>
          {checks.map((c) => (
            <ProblemList key={c.step} problems={c.problems} title={`Does not match ${c.step}'s input schema:`} />
          ))}
          {parsed.ok && parsed.value !== undefined && withSchema.length && !checks.length ? (
            <p className="ok-line" role="status">
              ✓ Matches {withSchema.map((s) => s.name).join(", ")}'s input schema.
            </p>
          ) : null}
          <div className="grid">
            <Field label="Event id (optional)" hint="The same id twice is one event: emitting is idempotent.">
              <input value={eventId} onChange={(e) => setEventId(e.target.value)} maxLength={200} />
            </Field>
            {fifo ? (
              <Field label="Message group id (optional)" hint="Fifo subscribers run one event at a time per group.">
                <input value={group} onChange={(e) => setGroup(e.target.value)} />
              </Field>
            ) : null}
          </div>
          <div className="row">
            <Submit
              allowed={allowed && !blocked}
              why={!allowed ? "your roles here do not include event.publish" : (blocked ?? undefined)}
              busy={busy}
            >
              Emit
            </Submit>
            {blocked && allowed ? <span className="muted small">To emit: {blocked}.</span> : null}
          </div>
        </form>
      ) : null}
      <ErrorBox error={error} />
      {accepted ? (
        <div className="notice" role="status">
          <p>
            Accepted on <code>{accepted.topic}</code>: event <code>{accepted.event_id}</code>, trace{" "}
            <code>{accepted.trace_id}</code>.
          </p>
          <p className="row">
            <Link to={`/traces/${encodeURIComponent(accepted.trace_id)}`}>Open the trace</Link>
            <Link to={`/logs?trace=${encodeURIComponent(accepted.trace_id)}`}>Logs of this trace</Link>
          </p>
        </div>
      ) : null}
    </Page>
  );
}
