// The shell: sign-in gate, header with the tenant / project / environment switcher, navigation
// (a side bar on wide screens, a menu on phones), and the page of the current route.
import { Suspense, useEffect, useMemo, useState } from "react";

import { ErrorBox, Loading } from "./components/ui";
import { useApi } from "./hooks";
import { PAGES } from "./pages/registry";
import type { PageDef } from "./pages/registry";
import { SignIn } from "./pages/SignIn";
import { match, navigate, usePath } from "./router";
import { useSession } from "./session";
import type { Session } from "./session";

/** Whether the caller may open `page` where it is working. */
export function mayOpen(session: Session, page: PageDef): boolean {
  const { place, me, roles } = session;
  if (page.scope === "system") return session.can(page.action, "system");
  if (page.scope === "project") return session.can(page.action);
  // tenant pages: any binding in the tenant (or the system) whose role holds the action
  return (me?.bindings ?? []).some(
    (b) =>
      roles[b.role]?.actions.includes(page.action) &&
      (b.scope === "system" || (place.tenant !== null && b.scope.startsWith(`tenant/${place.tenant}`))),
  );
}

function Switcher() {
  const session = useSession();
  const { place, choose, me } = session;
  const isAdmin = (me?.bindings ?? []).some((b) => b.scope === "system");
  const tenants = useApi<{ items: { id: string; name: string; status: string }[] }>(
    isAdmin ? "/v1/tenants?limit=500" : null,
  );
  const bound = useMemo(() => {
    const ids = new Set<string>();
    for (const b of me?.bindings ?? []) {
      const found = /^tenant\/([^/]+)/.exec(b.scope);
      if (found) ids.add(found[1]);
    }
    if (place.tenant) ids.add(place.tenant);
    for (const t of tenants.data?.items ?? []) if (t.status !== "deleted") ids.add(t.id);
    return [...ids].sort();
  }, [me, tenants.data, place.tenant]);
  const projects = useApi<{ items: { slug: string; name: string }[] }>(
    place.tenant ? "/v1/projects?limit=500" : null,
    { tenant: place.tenant },
  );
  const envs = useApi<{ items: { name: string }[] }>(
    place.tenant && place.project
      ? `/v1/projects/${encodeURIComponent(place.project)}/envs?limit=100`
      : null,
    { tenant: place.tenant },
  );
  const projectSlugs = projects.data?.items.map((p) => p.slug) ?? [];
  const envNames = envs.data?.items.map((e) => e.name) ?? [];
  if (place.project && !projectSlugs.includes(place.project)) projectSlugs.push(place.project);
  if (place.env && !envNames.includes(place.env)) envNames.push(place.env);
  return (
    <div className="switcher" role="group" aria-label="Where you are working">
      <label>
        <span>Tenant</span>
        <select
          value={place.tenant ?? ""}
          onChange={(e) => choose({ tenant: e.target.value || null, project: null, env: null })}
        >
          <option value="">—</option>
          {bound.map((id) => (
            <option key={id} value={id}>
              {id}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span>Project</span>
        <select
          value={place.project ?? ""}
          onChange={(e) => choose({ project: e.target.value || null, env: null })}
        >
          <option value="">—</option>
          {projectSlugs.map((slug) => (
            <option key={slug} value={slug}>
              {slug}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span>Environment</span>
        <select value={place.env ?? ""} onChange={(e) => choose({ env: e.target.value || null })}>
          <option value="">—</option>
          {envNames.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}

function Nav({ path, onPick }: { path: string; onPick: () => void }) {
  const session = useSession();
  const sections: PageDef["section"][] = ["Build", "Run", "Govern", "Report"];
  return (
    <nav aria-label="Pages">
      {sections.map((section) => {
        const pages = PAGES.filter((p) => p.menu && p.section === section && mayOpen(session, p));
        if (!pages.length) return null;
        return (
          <div key={section} className="nav-section">
            <h2>{section}</h2>
            <ul>
              {pages.map((p) => {
                const here = path === p.path || path.startsWith(`${p.path}/`);
                return (
                  <li key={p.path}>
                    <a
                      href={`#${p.path}`}
                      aria-current={here ? "page" : undefined}
                      onClick={onPick}
                    >
                      {p.title}
                    </a>
                  </li>
                );
              })}
            </ul>
          </div>
        );
      })}
    </nav>
  );
}

function Routed({ path }: { path: string }) {
  const session = useSession();
  for (const page of PAGES) {
    const params = match(page.path, path);
    if (!params) continue;
    if (!mayOpen(session, page)) {
      return (
        <section className="page">
          <h1 id="page-title">{page.title}</h1>
          <p className="muted">
            Your roles here do not include <code>{page.action}</code>, which this page needs.
          </p>
        </section>
      );
    }
    const Component = page.component;
    return (
      <Suspense fallback={<Loading when />}>
        <Component params={params} />
      </Suspense>
    );
  }
  return (
    <section className="page">
      <h1 id="page-title">Not found</h1>
      <p className="muted">No page at {path}.</p>
    </section>
  );
}

export function App() {
  const session = useSession();
  const path = usePath();
  const [menuOpen, setMenuOpen] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  useEffect(() => {
    if (session.state === "signed-in" && path === "/") navigate("/flows");
  }, [session.state, path]);

  // The sticky side bar starts below the header, whose height depends on how it wraps.
  const [header, setHeader] = useState<HTMLElement | null>(null);
  useEffect(() => {
    if (!header || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() =>
      document.documentElement.style.setProperty("--top-height", `${header.offsetHeight}px`),
    );
    observer.observe(header);
    return () => observer.disconnect();
  }, [header]);

  if (session.state === "loading") {
    return (
      <main className="center">
        <Loading when />
      </main>
    );
  }
  if (session.state === "signed-out") return <SignIn />;

  return (
    <div className={`shell${menuOpen ? " menu-open" : ""}`}>
      <header className="top" ref={setHeader}>
        <button
          type="button"
          className="btn plain menu-button"
          aria-expanded={menuOpen}
          aria-controls="sidebar"
          onClick={() => setMenuOpen((open) => !open)}
        >
          ☰ <span className="visually-hidden">Menu</span>
        </button>
        <a className="brand" href="#/flows">
          CFP Workbench
        </a>
        <Switcher />
        <div className="who">
          <span className="muted">{session.me?.email ?? session.me?.id}</span>
          <button
            type="button"
            className="btn plain"
            onClick={() => void session.signOut().catch(setError)}
          >
            Sign out
          </button>
        </div>
      </header>
      <div id="sidebar" className="sidebar">
        <Nav path={path} onPick={() => setMenuOpen(false)} />
      </div>
      <main className="content">
        <ErrorBox error={error} />
        <Routed path={path} />
      </main>
    </div>
  );
}
