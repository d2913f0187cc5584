// Logs: the stored lines (`GET R/logs`) and a live tail over the websocket, under the same filters
// (level, step, trace), newest first. Pause holds new lines back until resumed; each line opens
// to its whole JSON.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import { Action, Empty, ErrorBox, Json, Loading, Page } from "../components/ui";
import { Link } from "../router";
import { LevelBadge, LiveStatus, useRuntime, useSteps } from "./run/parts";
import { clock, hashQuery, usePaged } from "./run/runtime";
import { useRuntimeSocket } from "./run/socket";
import type { LogLine, ServerMessage } from "./run/socket";

const LEVELS = ["debug", "info", "warn", "error"];
const LIVE_LIMIT = 500;

export type LogFilters = { level: string; step: string; trace: string };

export function matches(line: LogLine, filters: LogFilters): boolean {
  if (filters.level && line.level !== filters.level) return false;
  if (filters.step && line.step !== filters.step) return false;
  if (filters.trace && line.trace_id !== filters.trace) return false;
  return true;
}

function lineKey(line: LogLine): string {
  return line.log_id ?? `${line.ts ?? line.time}-${line.msg}`;
}

function lineTime(line: LogLine): number {
  if (typeof line.ts === "number") return line.ts;
  const parsed = line.time ? Date.parse(line.time) : NaN;
  return Number.isNaN(parsed) ? 0 : parsed / 1000;
}

/** Live and stored lines together: one of each, newest first, those the filters keep. */
export function merge(live: LogLine[], stored: LogLine[], filters: LogFilters): LogLine[] {
  const seen = new Set<string>();
  const out: LogLine[] = [];
  for (const line of [...live, ...stored]) {
    const key = lineKey(line);
    if (seen.has(key) || !matches(line, filters)) continue;
    seen.add(key);
    out.push(line);
  }
  return out.sort((a, b) => lineTime(b) - lineTime(a));
}

function useDebounced<T>(value: T, ms: number): T {
  const [current, setCurrent] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setCurrent(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return current;
}

export default function LogsPage(_props: { params: Record<string, string> }) {
  const { runtime, tenant, missing } = useRuntime();
  const steps = useSteps(runtime, tenant);
  const stepNames = useMemo(() => (steps.data?.items ?? []).map((s) => s.name).sort(), [steps.data]);

  const [level, setLevel] = useState("");
  const [step, setStep] = useState(() => hashQuery().step ?? "");
  const [traceText, setTraceText] = useState(() => hashQuery().trace ?? "");
  const trace = useDebounced(traceText.trim(), 400);
  const filters = useMemo(() => ({ level, step, trace }), [level, step, trace]);

  const storedPath = runtime
    ? `${runtime}/logs?${new URLSearchParams(
        Object.entries({ trace_id: trace, step, level }).filter(([, v]) => v),
      ).toString()}`
    : null;
  const stored = usePaged<LogLine>(storedPath, tenant, 100);

  const [live, setLive] = useState<LogLine[]>([]);
  const [held, setHeld] = useState<LogLine[]>([]);
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const [open, setOpen] = useState<Set<string>>(new Set());

  const { socket, status, error: socketError } = useRuntimeSocket(runtime);

  const onMessage = useCallback((message: ServerMessage) => {
    if (message.type === "error") return;
    if (message.event?.type !== "log") return;
    const line = message.event.data as LogLine;
    if (pausedRef.current) setHeld((current) => [line, ...current].slice(0, LIVE_LIMIT));
    else setLive((current) => [line, ...current].slice(0, LIVE_LIMIT));
  }, []);

  useEffect(() => {
    if (!socket) return;
    const data: Record<string, string> = { subscriptionId: "logs" };
    if (level) data.level = level;
    if (step) data.step = step;
    if (trace) data.trace_id = trace;
    return socket.subscribe({ type: "tail", data: data as { subscriptionId: string } }, onMessage);
  }, [socket, level, step, trace, onMessage]);

  const resume = () => {
    setLive((current) => [...held, ...current].slice(0, LIVE_LIMIT));
    setHeld([]);
    setPaused(false);
  };

  const lines = useMemo(() => merge(live, stored.items, filters), [live, stored.items, filters]);

  if (missing) return <Page title="Logs">{missing}</Page>;

  const toggle = (key: string) =>
    setOpen((current) => {
      const next = new Set(current);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });

  return (
    <Page
      title="Logs"
      actions={
        <>
          {paused ? (
            <Action kind="primary" onClick={resume}>
              Resume{held.length ? ` (${held.length} new)` : ""}
            </Action>
          ) : (
            <Action onClick={() => setPaused(true)}>Pause</Action>
          )}
          <Action
            onClick={() => {
              setLive([]);
              setHeld([]);
              stored.reload();
            }}
          >
            Reload
          </Action>
        </>
      }
    >
      <form className="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="logs-level">
            <span>Level</span>
          </label>
          <select id="logs-level" value={level} onChange={(e) => setLevel(e.target.value)}>
            <option value="">any</option>
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="logs-step">
            <span>Step</span>
          </label>
          {stepNames.length ? (
            <select id="logs-step" value={step} onChange={(e) => setStep(e.target.value)}>
              <option value="">any</option>
              {stepNames.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
              {step && !stepNames.includes(step) ? <option value={step}>{step}</option> : null}
            </select>
          ) : (
            <input id="logs-step" value={step} onChange={(e) => setStep(e.target.value.trim())} />
          )}
        </div>
        <div className="field">
          <label htmlFor="logs-trace">
            <span>Trace id</span>
          </label>
          <input
            id="logs-trace"
            value={traceText}
            onChange={(e) => setTraceText(e.target.value)}
            spellCheck={false}
            autoCapitalize="off"
          />
        </div>
        {level || step || traceText ? (
          <button
            type="button"
            className="btn plain"
            onClick={() => {
              setLevel("");
              setStep("");
              setTraceText("");
            }}
          >
            Clear filters
          </button>
        ) : null}
      </form>
      <p className="live-line">
        <LiveStatus status={status} />
        {paused ? <span className="muted small"> · paused: {held.length} new line(s) held</span> : null}
        {trace ? (
          <>
            {" · "}
            <Link to={`/traces/${encodeURIComponent(trace)}`}>open this trace</Link>
          </>
        ) : null}
      </p>
      {socketError ? (
        <div className="error" role="alert">
          <strong>Live tail</strong>: {socketError.code}: {socketError.message}
        </div>
      ) : null}
      <ErrorBox error={stored.error} />
      <Loading when={stored.loading && !lines.length} />
      {!stored.loading && !lines.length ? <Empty>No log lines match.</Empty> : null}
      {lines.length ? (
        <ol className="log-list" aria-label="Log lines, newest first">
          {lines.map((line) => {
            const key = lineKey(line);
            const expanded = open.has(key);
            return (
              <li key={key} className={`log-${line.level ?? "info"}`}>
                <button
                  type="button"
                  className="log-line"
                  aria-expanded={expanded}
                  onClick={() => toggle(key)}
                >
                  <time className="log-time">{clock(lineTime(line))}</time>
                  <LevelBadge level={line.level} />
                  <span className="log-step">{line.step ?? "—"}</span>
                  <span className="log-msg">{line.msg}</span>
                  {line.trace_id ? (
                    <span className="log-trace">
                      trace <code>{line.trace_id.slice(0, 12)}</code>
                    </span>
                  ) : null}
                </button>
                {expanded ? (
                  <div className="log-detail">
                    {line.trace_id ? (
                      <p className="row">
                        <Link to={`/traces/${encodeURIComponent(line.trace_id)}`}>Open trace</Link>
                        <button type="button" className="btn plain" onClick={() => setTraceText(line.trace_id ?? "")}>
                          Only this trace
                        </button>
                      </p>
                    ) : null}
                    <Json value={line} label={`Log line ${line.msg ?? ""}`} />
                  </div>
                ) : null}
              </li>
            );
          })}
        </ol>
      ) : null}
      {stored.cursor ? (
        <div className="row">
          <Action onClick={stored.more} busy={stored.loading}>
            Load older lines
          </Action>
        </div>
      ) : null}
    </Page>
  );
}
