// The endpoint tester: pick an api step, fill its path and query parameters and its body (a form
// built from the step's body schema, or raw JSON), send it to `/p/{tenant}/{project}/{env}{path}`
// with the caller's credentials, and read the answer: status, headers, body and timing.
import { useMemo, useState } from "react";
import type { FormEvent } from "react";

import { send } from "../api";
import { Empty, ErrorBox, Json, Loading, Page, Submit, Table } from "../components/ui";
import { Link } from "../router";
import { useSubmit } from "../hooks";
import { useSession } from "../session";
import { HttpStatus, JsonEditor, ProblemList, useRuntime, useSteps } from "./run/parts";
import { buildRequest, duration, hashQuery, pathParams, takesBody } from "./run/runtime";
import type { QueryRow, Step } from "./run/runtime";
import { SchemaForm } from "./run/SchemaForm";
import { initialValue, parseJson, validate } from "./run/schema";

export type TesterResponse = {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: unknown;
  text: string;
  json: boolean;
  ms: number;
  url: string;
  method: string;
};

/** Send the tester's request and take the answer apart (any status: the step's own answer). */
export async function invoke(
  request: { url: string; method: string; body: unknown },
  tenant: string,
  now: () => number = () => performance.now(),
): Promise<TesterResponse> {
  const started = now();
  const response = await send(request.url, {
    method: request.method,
    body: request.body,
    tenant,
    accept: "application/json, text/plain;q=0.9, */*;q=0.8",
  });
  const text = await response.text();
  const ms = now() - started;
  let body: unknown = text;
  let json = false;
  if (text) {
    try {
      body = JSON.parse(text);
      json = true;
    } catch {
      body = text;
    }
  }
  const headers: [string, string][] = [];
  response.headers.forEach((value, name) => headers.push([name, value]));
  headers.sort(([a], [b]) => a.localeCompare(b));
  return {
    status: response.status,
    statusText: response.statusText,
    headers,
    body,
    text,
    json,
    ms,
    url: request.url,
    method: request.method,
  };
}

function label(step: Step): string {
  return `${step.method ?? "GET"} ${step.path ?? "/"} (${step.name})`;
}

export default function TesterPage(_props: { params: Record<string, string> }) {
  const { runtime, tenant, missing } = useRuntime();
  const steps = useSteps(runtime, tenant);
  const apiSteps = useMemo(
    () => (steps.data?.items ?? []).filter((s) => s.type === "api" && s.path),
    [steps.data],
  );
  const [chosen, setChosen] = useState<string>(() => hashQuery().step ?? "");
  const step = apiSteps.find((s) => s.name === chosen) ?? apiSteps[0] ?? null;

  if (missing) {
    return <Page title="Endpoint tester">{missing}</Page>;
  }

  return (
    <Page title="Endpoint tester">
      <ErrorBox error={steps.error} />
      <Loading when={steps.loading && !steps.data} />
      {steps.data && !apiSteps.length ? <Empty>This project has no api steps.</Empty> : null}
      {step && tenant ? (
        // keyed by step: a new step starts from fresh inputs
        <StepTester key={step.name} step={step} steps={apiSteps} onChoose={setChosen} tenant={tenant} />
      ) : null}
    </Page>
  );
}

function StepTester(props: { step: Step; steps: Step[]; onChoose: (name: string) => void; tenant: string }) {
  const { step, steps: apiSteps, tenant } = props;
  const session = useSession();
  const schema = step.body_schema ?? null;
  const method = (step.method ?? "GET").toUpperCase();
  const hasBody = takesBody(method);
  const start = useMemo(() => (schema ? initialValue(schema) : undefined), [schema]);

  const [params, setParams] = useState<Record<string, string>>({});
  const [rows, setRows] = useState<QueryRow[]>([]);
  const [mode, setMode] = useState<"form" | "raw">(schema ? "form" : "raw");
  const [formValue, setFormValue] = useState<unknown>(start);
  const [rawText, setRawText] = useState(start === undefined ? "" : JSON.stringify(start, null, 2));
  const [modeError, setModeError] = useState<string | null>(null);
  const { run, busy, error } = useSubmit();
  const [response, setResponse] = useState<TesterResponse | null>(null);

  const parsedRaw = parseJson(rawText);
  const body = mode === "form" ? formValue : parsedRaw.ok ? parsedRaw.value : undefined;
  const problems = useMemo(
    () => (schema && hasBody && body !== undefined ? validate(schema, body) : []),
    [schema, hasBody, body],
  );

  const request =
    session.place.tenant && session.place.project && session.place.env
      ? buildRequest(
          { tenant: session.place.tenant, project: session.place.project, env: session.place.env },
          step,
          params,
          rows,
          body,
        )
      : null;
  const allowed = session.can("step.invoke");
  const blocked = !request
    ? "choose an api step"
    : request.missing.length
      ? `fill in ${request.missing.join(", ")}`
      : hasBody && mode === "raw" && !parsedRaw.ok
        ? "the raw body is not valid JSON"
        : null;

  function switchMode(next: "form" | "raw") {
    if (next === mode) return;
    if (next === "raw") {
      setRawText(formValue === undefined ? "" : JSON.stringify(formValue, null, 2));
      setModeError(null);
      setMode("raw");
      return;
    }
    const parsed = parseJson(rawText);
    if (!parsed.ok) {
      setModeError(`The raw body is not valid JSON (${parsed.error}); fix it before going back to the form.`);
      return;
    }
    setFormValue(parsed.value);
    setModeError(null);
    setMode("form");
  }

  async function submit(event?: FormEvent) {
    event?.preventDefault();
    if (!request || blocked) return;
    await run(async () => {
      try {
        setResponse(await invoke(request, tenant));
      } catch (reason) {
        setResponse(null);
        throw reason;
      }
    });
  }

  const traceId = response?.headers.find(([name]) => name === "x-trace-id")?.[1];
  const names = step.path ? pathParams(step.path) : [];

  return (
    <>
      <form className="run-form" onSubmit={(e) => void submit(e)} aria-label="Request">
          <div className="field">
            <label htmlFor="tester-step">
              <span>API step</span>
            </label>
            <select id="tester-step" value={step.name} onChange={(e) => props.onChoose(e.target.value)}>
              {apiSteps.map((s) => (
                <option key={s.name} value={s.name}>
                  {label(s)}
                </option>
              ))}
            </select>
            {step.description ? <small className="muted">{step.description}</small> : null}
          </div>

          {names.length ? (
            <fieldset className="sf-group">
              <legend>Path parameters</legend>
              <div className="grid">
                {names.map((name) => (
                  <div className="field" key={name}>
                    <label htmlFor={`tester-param-${name}`}>
                      <span>
                        {name}
                        <span className="required-mark" aria-hidden="true">
                          {" "}
                          *
                        </span>
                        <span className="visually-hidden"> (required)</span>
                      </span>
                    </label>
                    <input
                      id={`tester-param-${name}`}
                      value={params[name] ?? ""}
                      aria-required="true"
                      onChange={(e) => setParams({ ...params, [name]: e.target.value })}
                    />
                  </div>
                ))}
              </div>
            </fieldset>
          ) : null}

          <fieldset className="sf-group">
            <legend>Query parameters</legend>
            {rows.length === 0 ? <p className="muted small">None.</p> : null}
            {rows.map((row, index) => (
              <div className="query-row" key={index}>
                <div className="field">
                  <label htmlFor={`tester-q-${index}-key`}>
                    <span>Name {index + 1}</span>
                  </label>
                  <input
                    id={`tester-q-${index}-key`}
                    value={row.key}
                    onChange={(e) =>
                      setRows(rows.map((r, i) => (i === index ? { ...r, key: e.target.value } : r)))
                    }
                  />
                </div>
                <div className="field">
                  <label htmlFor={`tester-q-${index}-value`}>
                    <span>Value {index + 1}</span>
                  </label>
                  <input
                    id={`tester-q-${index}-value`}
                    value={row.value}
                    onChange={(e) =>
                      setRows(rows.map((r, i) => (i === index ? { ...r, value: e.target.value } : r)))
                    }
                  />
                </div>
                <button
                  type="button"
                  className="btn plain"
                  onClick={() => setRows(rows.filter((_, i) => i !== index))}
                  aria-label={`Remove query parameter ${index + 1}`}
                >
                  Remove
                </button>
              </div>
            ))}
            <button type="button" className="btn plain" onClick={() => setRows([...rows, { key: "", value: "" }])}>
              Add query parameter
            </button>
          </fieldset>

          {hasBody ? (
            <fieldset className="sf-group">
              <legend>Body</legend>
              <div className="toggle" role="group" aria-label="Body editor">
                <button
                  type="button"
                  className="btn plain"
                  aria-pressed={mode === "form"}
                  disabled={!schema}
                  title={schema ? undefined : "this step declares no body schema"}
                  onClick={() => switchMode("form")}
                >
                  Form
                </button>
                <button
                  type="button"
                  className="btn plain"
                  aria-pressed={mode === "raw"}
                  onClick={() => switchMode("raw")}
                >
                  Raw JSON
                </button>
              </div>
              {!schema ? <p className="muted small">This step declares no body schema: write the body as JSON.</p> : null}
              {modeError ? (
                <p className="field-error" role="alert">
                  {modeError}
                </p>
              ) : null}
              {mode === "form" && schema ? (
                <SchemaForm
                  schema={schema}
                  value={formValue}
                  onChange={setFormValue}
                  problems={problems}
                  idPrefix="tester-body"
                />
              ) : (
                <JsonEditor
                  id="tester-raw"
                  label="Body (JSON)"
                  value={rawText}
                  onChange={setRawText}
                  rows={12}
                  hint="Leave empty to send no body."
                />
              )}
              <ProblemList
                problems={problems}
                urgent={false}
                title="The body does not match the step's schema (you can still send it):"
              />
            </fieldset>
          ) : null}

          {request ? (
            <p className="request-line">
              <span className="badge">{request.method}</span> <code>{request.url}</code>
            </p>
          ) : null}
          <div className="row">
            <Submit
              allowed={allowed && !blocked}
              why={!allowed ? "your roles here do not include step.invoke" : (blocked ?? undefined)}
              busy={busy}
            >
              Send
            </Submit>
            {blocked ? <span className="muted small">To send: {blocked}.</span> : null}
          </div>
        </form>

      <ErrorBox error={error} />
      {response ? (
        <section className="response" aria-label="Response">
          <h2>Response</h2>
          <p className="response-line">
            <HttpStatus status={response.status} /> <span>{response.statusText}</span>{" "}
            <span className="muted">
              in <strong data-testid="timing">{duration(response.ms)}</strong>
            </span>
            {traceId ? (
              <>
                {" · "}
                <Link to={`/traces/${encodeURIComponent(traceId)}`}>trace {traceId.slice(0, 12)}…</Link>
                {" · "}
                <Link to={`/logs?trace=${encodeURIComponent(traceId)}`}>its logs</Link>
              </>
            ) : null}
          </p>
          <h3>Body</h3>
          {response.text === "" ? (
            <Empty>No body.</Empty>
          ) : response.json ? (
            <Json value={response.body} label="Response body" />
          ) : (
            <pre className="json" aria-label="Response body" tabIndex={0}>
              {response.text}
            </pre>
          )}
          <h3>Headers</h3>
          <Table
            label="Response headers"
            rows={response.headers}
            rowKey={([name]) => name}
            columns={[
              { title: "Header", cell: ([name]) => <code>{name}</code> },
              { title: "Value", cell: ([, value]) => value, className: "wrap" },
            ]}
          />
        </section>
      ) : null}
    </>
  );
}
