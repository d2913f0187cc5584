// Who is signed in, what they may do, and where they are working (tenant, project, environment).
import { createContext, useCallback, useContext, useEffect, useMemo, useState } from "react";
import type { ReactNode } from "react";

import { acceptTokens, api, ApiError, forgetTokens, onToken, refresh } from "./api";
import type { Tokens } from "./api";

export type Binding = { id?: string | null; principal: string; role: string; scope: string };
export type Me = { id: string; kind: string; email: string | null; bindings: Binding[] };
export type Role = { id: string; name: string; actions: string[]; scopes: string[] };
export type Served = { tenant: string; project: string; env: string };

export type Place = { tenant: string | null; project: string | null; env: string | null };

type SignInResult = { mfa: false } | { mfa: true; challenge: string };

export type Session = {
  state: "loading" | "signed-out" | "signed-in";
  me: Me | null;
  roles: Record<string, Role>;
  place: Place;
  served: Served | null;
  teamOf: Record<string, string | null>; // project slug → team id, in the chosen tenant
  choose: (place: Partial<Place>) => void;
  signIn: (email: string, password: string) => Promise<SignInResult>;
  verifyMfa: (challenge: string, code: string) => Promise<void>;
  signOut: () => Promise<void>;
  /** Whether a binding of the caller allows `action` on `scope` (the server decides anyway). */
  can: (action: string, scope?: string) => boolean;
  /** The runtime routes' base, `/v1/projects/{p}/envs/{e}`, for the chosen place. */
  runtime: string | null;
};

const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside <SessionProvider>");
  return session;
}

const PLACE_KEY = "cfp.place";

function storedPlace(): Place {
  try {
    const raw = localStorage.getItem(PLACE_KEY);
    if (raw) return { tenant: null, project: null, env: null, ...JSON.parse(raw) };
  } catch {
    // a blocked or corrupt storage: start from nothing
  }
  return { tenant: null, project: null, env: null };
}

/** Whether `scope` lies under `bound` (a binding's scope), given the project's team. */
export function covers(bound: string, scope: string, team: string | null): boolean {
  if (bound === "system") return true;
  if (scope === bound || scope.startsWith(`${bound}/`)) return true;
  const match = /^tenant\/([^/]+)\/team\/([^/]+)$/.exec(bound);
  if (match && team === match[2]) return scope.startsWith(`tenant/${match[1]}/project/`);
  return false;
}

/** The tenant whose project this process serves, among those the caller may work in: a
 * system administrator is bound on no tenant, so the tenants are asked for then. */
async function servingTenant(who: Me, project: string): Promise<string | null> {
  let tenants = [
    ...new Set(
      who.bindings
        .map((b) => /^tenant\/([^/]+)/.exec(b.scope)?.[1])
        .filter((t): t is string => Boolean(t)),
    ),
  ];
  if (!tenants.length && who.bindings.some((b) => b.scope === "system")) {
    try {
      const page = await api<{ items: { id: string; status: string }[] }>("/v1/tenants?limit=50");
      tenants = page.items.filter((t) => t.status !== "deleted").map((t) => t.id);
    } catch {
      return null;
    }
  }
  for (const tenant of tenants.slice(0, 20)) {
    try {
      const page = await api<{ items: { slug: string }[] }>("/v1/projects?limit=500", { tenant });
      if (page.items.some((p) => p.slug === project)) return tenant;
    } catch {
      // not readable there: try the next
    }
  }
  return tenants[0] ?? null;
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<Session["state"]>("loading");
  const [me, setMe] = useState<Me | null>(null);
  const [roles, setRoles] = useState<Record<string, Role>>({});
  const [place, setPlace] = useState<Place>(storedPlace);
  const [served, setServed] = useState<Served | null>(null);
  const [teamOf, setTeamOf] = useState<Record<string, string | null>>({});

  const load = useCallback(async () => {
    try {
      const [who, catalogue, listing] = await Promise.all([
        api<Me>("/v1/me"),
        api<{ items: Role[] }>("/v1/roles"),
        // without x-tenant-id: what this process serves (one project environment)
        api<{ items: { slug: string; envs: string[] }[] }>("/v1/projects"),
      ]);
      setMe(who);
      setRoles(Object.fromEntries(catalogue.items.map((r) => [r.id, r])));
      const first = listing.items[0];
      const here = first
        ? {
            tenant: await servingTenant(who, first.slug),
            project: first.slug,
            env: first.envs[0] ?? null,
          }
        : null;
      if (here?.tenant && here.project && here.env) {
        setServed(here as Served);
        setPlace((current) =>
          current.tenant && current.project && current.env ? current : (here as Place),
        );
      }
      setState("signed-in");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        forgetTokens();
        setState("signed-out");
      } else {
        throw error;
      }
    }
  }, []);

  useEffect(() => {
    // A reload: the refresh cookie gives a new access token, if the session is still on.
    // A failed refresh or first load (server unreachable, 5xx) shows the sign-in page rather
    // than "Loading…" forever (and is no unhandled rejection).
    void refresh()
      .then((token) => (token ? load() : setState("signed-out")))
      .catch(() => setState("signed-out"));
    return onToken((token) => {
      if (!token) {
        setMe(null);
        setState("signed-out");
      }
    });
  }, [load]);

  useEffect(() => {
    localStorage.setItem(PLACE_KEY, JSON.stringify(place));
  }, [place]);

  useEffect(() => {
    if (state !== "signed-in" || !place.tenant) return;
    api<{ items: { slug: string; team_id: string | null }[] }>("/v1/projects?limit=500", {
      tenant: place.tenant,
    })
      .then((page) => setTeamOf(Object.fromEntries(page.items.map((p) => [p.slug, p.team_id]))))
      .catch(() => setTeamOf({}));
  }, [state, place.tenant]);

  const signIn = useCallback(
    async (email: string, password: string): Promise<SignInResult> => {
      const answer = await api<Tokens & { mfa_required?: boolean; challenge_id?: string }>(
        "/v1/auth/signin",
        { body: { email, password } },
      );
      if (answer.challenge_id) return { mfa: true, challenge: answer.challenge_id };
      acceptTokens(answer);
      await load();
      return { mfa: false };
    },
    [load],
  );

  const verifyMfa = useCallback(
    async (challenge: string, code: string) => {
      acceptTokens(await api<Tokens>("/v1/auth/mfa/verify", { body: { challenge_id: challenge, code } }));
      await load();
    },
    [load],
  );

  const signOut = useCallback(async () => {
    try {
      await api("/v1/auth/signout", { method: "POST" });
    } finally {
      forgetTokens();
      setMe(null);
      setState("signed-out");
    }
  }, []);

  const can = useCallback(
    (action: string, scope?: string) => {
      if (!me) return false;
      const target =
        scope ??
        (place.tenant && place.project
          ? `tenant/${place.tenant}/project/${place.project}`
          : place.tenant
            ? `tenant/${place.tenant}`
            : "system");
      const project = /\/project\/([^/]+)$/.exec(target)?.[1];
      const team = project ? (teamOf[project] ?? null) : null;
      return me.bindings.some(
        (b) => roles[b.role]?.actions.includes(action) && covers(b.scope, target, team),
      );
    },
    [me, roles, place, teamOf],
  );

  const choose = useCallback((next: Partial<Place>) => setPlace((p) => ({ ...p, ...next })), []);

  const runtime =
    place.project && place.env
      ? `/v1/projects/${encodeURIComponent(place.project)}/envs/${encodeURIComponent(place.env)}`
      : null;

  const value = useMemo<Session>(
    () => ({
      state,
      me,
      roles,
      place,
      served,
      teamOf,
      choose,
      signIn,
      verifyMfa,
      signOut,
      can,
      runtime,
    }),
    [state, me, roles, place, served, teamOf, choose, signIn, verifyMfa, signOut, can, runtime],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}
