// The workbench's shared building blocks: page frame, tables that scroll in their own box,
// errors with their correlation id, JSON views, buttons that say why they are disabled.
import { useEffect } from "react";
import type { FormEvent, ReactNode } from "react";

import { ApiError } from "../api";

export function Page(props: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section className="page" aria-labelledby="page-title">
      <header className="page-head">
        <h1 id="page-title">{props.title}</h1>
        {props.actions ? <div className="page-actions">{props.actions}</div> : null}
      </header>
      {props.children}
    </section>
  );
}

export function ErrorBox({ error }: { error: Error | null | undefined }) {
  if (!error) return null;
  const api = error instanceof ApiError ? error : null;
  return (
    <div className="error" role="alert">
      <strong>{api ? `${api.status} ${api.code}` : "Error"}</strong>: {error.message}
      {api?.correlationId ? <small> (correlation id {api.correlationId})</small> : null}
    </div>
  );
}

export function Loading({ when }: { when: boolean }) {
  return when ? (
    <p className="muted" role="status">
      Loading…
    </p>
  ) : null;
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="muted">{children}</p>;
}

/** A table inside its own horizontally scrolling box: the page never scrolls sideways. */
export function Table<T>(props: {
  rows: T[];
  columns: { title: string; cell: (row: T) => ReactNode; className?: string }[];
  rowKey: (row: T) => string;
  onRow?: (row: T) => void;
  label: string;
}) {
  return (
    <div className="table-box" role="region" aria-label={props.label} tabIndex={0}>
      <table>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th key={c.title} scope="col" className={c.className}>
                {c.title}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr key={props.rowKey(row)}>
              {props.columns.map((c, index) => (
                <td key={c.title} className={c.className}>
                  {index === 0 && props.onRow ? (
                    <button type="button" className="link" onClick={() => props.onRow!(row)}>
                      {c.cell(row)}
                    </button>
                  ) : (
                    c.cell(row)
                  )}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Json({ value, label }: { value: unknown; label?: string }) {
  return (
    <pre className="json" aria-label={label ?? "JSON"} tabIndex={0}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

/** A button that, when not allowed, is disabled and says why (the server enforces anyway). */
export function Action(props: {
  onClick: () => void;
  children: ReactNode;
  allowed?: boolean;
  why?: string;
  busy?: boolean;
  kind?: "primary" | "danger" | "plain";
  type?: "button" | "submit";
}) {
  const allowed = props.allowed ?? true;
  return (
    <button
      type={props.type ?? "button"}
      className={`btn ${props.kind ?? "plain"}`}
      onClick={props.onClick}
      disabled={!allowed || props.busy}
      title={allowed ? undefined : props.why}
      aria-disabled={!allowed || props.busy}
    >
      {props.busy ? "Working…" : props.children}
      {!allowed && props.why ? <span className="visually-hidden"> ({props.why})</span> : null}
    </button>
  );
}

export function Field(props: { label: string; children: ReactNode; hint?: string }) {
  return (
    <label className="field">
      <span>{props.label}</span>
      {props.children}
      {props.hint ? <small className="muted">{props.hint}</small> : null}
    </label>
  );
}

/** A side panel on wide screens, a bottom sheet on phones (CSS decides). */
export function Sheet(props: { title: string; onClose: () => void; children: ReactNode }) {
  const { onClose } = props;
  useEffect(() => {
    const close = (event: KeyboardEvent) => {
      if (event.key === "Escape") onClose();
    };
    window.addEventListener("keydown", close);
    return () => window.removeEventListener("keydown", close);
  }, [onClose]);
  return (
    <aside className="sheet" role="dialog" aria-label={props.title}>
      <header>
        <h2>{props.title}</h2>
        <button type="button" className="btn plain" onClick={props.onClose} aria-label="Close">
          ✕
        </button>
      </header>
      <div className="sheet-body">{props.children}</div>
    </aside>
  );
}

export function time(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** A form that calls `onSubmit` without reloading the page. */
export function Form(props: {
  onSubmit: () => void;
  children: ReactNode;
  label: string;
  className?: string;
}) {
  return (
    <form
      className={props.className ?? "gv-form"}
      aria-label={props.label}
      onSubmit={(event: FormEvent) => {
        event.preventDefault();
        props.onSubmit();
      }}
    >
      {props.children}
    </form>
  );
}

/** A submit button with the Action look (disabled with the reason when not allowed). */
export function Submit(props: {
  children: ReactNode;
  allowed?: boolean;
  why?: string;
  busy?: boolean;
  kind?: "primary" | "plain" | "danger";
}) {
  return (
    <Action
      type="submit"
      kind={props.kind ?? "primary"}
      allowed={props.allowed}
      why={props.why}
      busy={props.busy}
      onClick={() => undefined}
    >
      {props.children}
    </Action>
  );
}

/** A short "it worked" message, announced politely; nothing when there is none. */
export function Notice({ children }: { children?: ReactNode }) {
  return children ? (
    <p className="notice" role="status">
      {children}
    </p>
  ) : null;
}

/** A list's states above its table: load errors, a notice, "Loading…" and the empty text. */
export function ListState(props: {
  error?: Error | null | (Error | null | undefined)[];
  notice?: ReactNode;
  loading: boolean;
  empty: boolean;
  emptyText: ReactNode;
}) {
  const errors = Array.isArray(props.error) ? props.error : [props.error];
  return (
    <>
      {errors.map((error, index) => (
        <ErrorBox key={index} error={error} />
      ))}
      <Notice>{props.notice}</Notice>
      <Loading when={props.loading} />
      {props.empty ? <Empty>{props.emptyText}</Empty> : null}
    </>
  );
}

/** ListState's error, loading and empty of a paged list (items that grow page by page). */
export function pagedState(list: { items: unknown[]; loading: boolean; error: Error | null }) {
  return {
    error: list.error,
    loading: list.loading && list.items.length === 0,
    empty: !list.loading && !list.error && list.items.length === 0,
  };
}
