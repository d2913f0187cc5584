// Small pieces shared by the governance pages: an inline confirmation (no window.confirm, so
// nothing blocks a phone or a test browser), the "choose a tenant" placeholder, a stale-write
// hint, status badges and the scope picker used by invites and role bindings.
import { useEffect, useState } from "react";

import { Action, Empty, ErrorBox, Field, Page } from "../../components/ui";
import { useApi } from "../../hooks";
import { isStale, needs, projectScope, teamScope, tenantScope } from "./lib";
import type { Paged } from "./lib";

import "./govern.css";

/** A button that asks again before it acts: the first tap shows "Really …?" with Yes / Cancel. */
export function Confirm(props: {
  label: string;
  question: string;
  onConfirm: () => void | Promise<unknown>;
  allowed?: boolean;
  why?: string;
  busy?: boolean;
  kind?: "danger" | "plain" | "primary";
}) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <Action
        kind={props.kind ?? "danger"}
        allowed={props.allowed}
        why={props.why}
        busy={props.busy}
        onClick={() => setAsking(true)}
      >
        {props.label}
      </Action>
    );
  }
  return (
    <span className="gv-confirm" role="group" aria-label={props.question}>
      <span>{props.question}</span>
      <Action
        kind={props.kind ?? "danger"}
        busy={props.busy}
        onClick={() => {
          setAsking(false);
          void props.onConfirm();
        }}
      >
        Yes, {props.label.toLowerCase()}
      </Action>
      <Action onClick={() => setAsking(false)}>Cancel</Action>
    </span>
  );
}

/** A select of the tenant's projects, by slug: a required choice, or (`all`) a filter whose
 *  empty value is "All projects" (the report and session-log pages). */
export function ProjectSelect(props: {
  projects: string[];
  value: string;
  onChange: (slug: string) => void;
  all?: boolean;
}) {
  return (
    <Field label="Project">
      <select value={props.value} onChange={(e) => props.onChange(e.target.value)} required={!props.all}>
        {props.all ? <option value="">All projects</option> : null}
        {props.projects.map((slug) => (
          <option key={slug} value={slug}>
            {slug}
          </option>
        ))}
      </select>
    </Field>
  );
}

/** Whether the caller may write reports and session logs of `project`, and why not. */
export function reportWrite(
  session: { can: (action: string, scope?: string) => boolean },
  tenant: string,
  project: string,
): { allowed: boolean; why: string } {
  return {
    allowed: Boolean(project) && session.can("report.manage", projectScope(tenant, project)),
    why: needs("report.manage", project ? projectScope(tenant, project) : "a project"),
  };
}

/** "More" under a paged list, while it has a next page. */
export function More({
  list,
  label = "More",
}: {
  list: { next: string | null; loading: boolean; more: () => void };
  label?: string;
}) {
  return list.next ? (
    <Action busy={list.loading} onClick={list.more}>
      {label}
    </Action>
  ) : null;
}

/** A tenant-scoped page with no tenant chosen yet. */
export function NeedTenant({ title }: { title: string }) {
  return (
    <Page title={title}>
      <Empty>Choose a tenant in the switcher above to see this page.</Empty>
    </Page>
  );
}

/** ErrorBox, plus what to do when a write was stale (412). */
export function WriteError({ error, onReload }: { error: Error | null; onReload?: () => void }) {
  if (!error) return null;
  return (
    <>
      <ErrorBox error={error} />
      {isStale(error) ? (
        <p className="gv-hint">
          Someone changed it since you loaded it.{" "}
          {onReload ? (
            <button type="button" className="link" onClick={onReload}>
              Load the current version
            </button>
          ) : (
            "Reload and try again."
          )}
        </p>
      ) : null}
    </>
  );
}

/** A status as a coloured badge with its word (colour is never the only cue). */
export function StatusBadge({ status }: { status: string | null | undefined }) {
  const value = status ?? "none";
  const tone: Record<string, string> = {
    active: "ok",
    ok: "ok",
    success: "ok",
    green: "green",
    amber: "amber",
    red: "red",
    suspended: "warn",
    pending: "warn",
    draft: "",
    disabled: "error",
    revoked: "error",
    deleted: "error",
    failure: "error",
    error: "error",
    terminated: "error",
    expired: "warn",
  };
  return <span className={`badge ${tone[value] ?? ""}`}>{value}</span>;
}

// Form and Submit moved to the shared components; kept here for the pages that import them.
export { Form, Submit } from "../../components/ui";

export type ScopeKind = "tenant" | "team" | "project";

type Team = { id: string; name: string };
type Project = { slug: string; name: string };

/** Pick a scope inside `tenant`: the tenant itself, one of its teams, or one of its projects. */
export function ScopePicker(props: {
  tenant: string;
  value: string;
  onChange: (scope: string) => void;
  kinds?: ScopeKind[];
  label?: string;
}) {
  const kinds = props.kinds ?? ["tenant", "team", "project"];
  const teams = useApi<Paged<Team>>(kinds.includes("team") ? "/v1/teams?limit=200" : null, {
    tenant: props.tenant,
  });
  const projects = useApi<Paged<Project>>(
    kinds.includes("project") ? "/v1/projects?limit=200" : null,
    { tenant: props.tenant },
  );
  const parsed = parseScope(props.value);
  const kind: ScopeKind = parsed?.kind ?? "tenant";
  const [free, setFree] = useState(parsed?.name ?? "");

  useEffect(() => setFree(parseScope(props.value)?.name ?? ""), [props.value]);

  const setKind = (next: ScopeKind) => {
    if (next === "tenant") props.onChange(tenantScope(props.tenant));
    else if (next === "team") {
      const first = teams.data?.items[0]?.id;
      props.onChange(first ? teamScope(props.tenant, first) : `tenant/${props.tenant}/team/`);
    } else {
      const first = projects.data?.items[0]?.slug;
      props.onChange(first ? projectScope(props.tenant, first) : `tenant/${props.tenant}/project/`);
    }
  };
  const build = (name: string) =>
    kind === "team" ? teamScope(props.tenant, name) : projectScope(props.tenant, name);
  const options: { value: string; label: string }[] =
    kind === "team"
      ? (teams.data?.items ?? []).map((t) => ({ value: t.id, label: `${t.name} (${t.id})` }))
      : kind === "project"
        ? (projects.data?.items ?? []).map((p) => ({ value: p.slug, label: p.name === p.slug ? p.slug : `${p.name} (${p.slug})` }))
        : [];
  const listed = kind === "team" ? teams : projects;
  return (
    <fieldset className="gv-scope">
      <legend>{props.label ?? "Scope"}</legend>
      <Field label="Level">
        <select value={kind} onChange={(e) => setKind(e.target.value as ScopeKind)}>
          {kinds.map((k) => (
            <option key={k} value={k}>
              {k === "tenant" ? `The whole tenant (${props.tenant})` : k === "team" ? "A team" : "A project"}
            </option>
          ))}
        </select>
      </Field>
      {kind !== "tenant" ? (
        listed.error || options.length === 0 ? (
          <Field
            label={kind === "team" ? "Team id" : "Project slug"}
            hint={listed.error ? "The list could not be loaded: type the id." : undefined}
          >
            <input
              value={free}
              onChange={(e) => {
                setFree(e.target.value);
                props.onChange(build(e.target.value.trim()));
              }}
              required
            />
          </Field>
        ) : (
          <Field label={kind === "team" ? "Team" : "Project"}>
            <select value={parsed?.name ?? ""} onChange={(e) => props.onChange(build(e.target.value))} required>
              <option value="" disabled>
                Choose…
              </option>
              {options.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.label}
                </option>
              ))}
            </select>
          </Field>
        )
      ) : null}
      <p className="muted small">
        Scope: <code>{props.value}</code>
      </p>
    </fieldset>
  );
}

/** The kind and name of a scope string inside a tenant. */
export function parseScope(scope: string): { kind: ScopeKind; tenant: string; name: string | null } | null {
  const found = /^tenant\/([^/]+)(?:\/(team|project)\/([^/]*))?$/.exec(scope);
  if (!found) return null;
  return { tenant: found[1], kind: (found[2] as ScopeKind | undefined) ?? "tenant", name: found[3] ?? null };
}

/** The scope kind of a scope string: system, tenant, team or project. */
export function scopeKind(scope: string): "system" | ScopeKind | null {
  if (scope === "system") return "system";
  return parseScope(scope)?.kind ?? null;
}
