// Every page of the workbench, in menu order: its route, title, section and the action a role
// needs to use it (the menu hides what the caller may not open; the server enforces anyway).
import { lazy } from "react";
import type { ComponentType, LazyExoticComponent } from "react";

export type PageDef = {
  path: string; // a route pattern: `/flows/:flow`
  title: string;
  section: "Build" | "Run" | "Govern" | "Report";
  action: string; // the permission the page needs
  scope: "project" | "tenant" | "system";
  menu: boolean; // listed in the navigation (detail routes are not)
  component: LazyExoticComponent<ComponentType<{ params: Record<string, string> }>>;
};

const page = (
  path: string,
  title: string,
  section: PageDef["section"],
  action: string,
  scope: PageDef["scope"],
  load: () => Promise<{ default: ComponentType<{ params: Record<string, string> }> }>,
  menu = true,
): PageDef => ({ path, title, section, action, scope, menu, component: lazy(load) });

export const PAGES: PageDef[] = [
  page("/flows", "Flows", "Build", "flow.read", "project", () => import("./Flows")),
  page("/flows/:flow", "Flow", "Build", "flow.read", "project", () => import("./FlowCanvas"), false),
  page("/tester", "Endpoint tester", "Build", "step.invoke", "project", () => import("./Tester")),
  page("/emit", "Emit an event", "Build", "event.publish", "project", () => import("./Emit")),
  page("/traces", "Traces", "Run", "execution.read", "project", () => import("./Traces")),
  page("/traces/:trace", "Trace", "Run", "execution.read", "project", () => import("./Traces"), false),
  page("/logs", "Logs", "Run", "execution.read", "project", () => import("./Logs")),
  page("/state", "State", "Run", "state.read", "project", () => import("./State")),
  page("/streams", "Streams", "Run", "state.read", "project", () => import("./Streams")),
  page("/dead-letters", "Dead letters", "Run", "execution.read", "project", () => import("./DeadLetters")),
  page("/manage/tenants", "Tenants", "Govern", "tenant.manage", "system", () => import("./manage/Tenants")),
  page("/manage/teams", "Teams", "Govern", "team.read", "tenant", () => import("./manage/Teams")),
  page("/manage/users", "Users", "Govern", "user.read", "tenant", () => import("./manage/Users")),
  page("/manage/bindings", "Role bindings", "Govern", "role_binding.read", "tenant", () => import("./manage/Bindings")),
  page("/manage/projects", "Projects", "Govern", "project.read", "tenant", () => import("./manage/Projects")),
  page("/manage/service-accounts", "Service accounts", "Govern", "user.read", "tenant", () => import("./manage/ServiceAccounts")),
  page("/audit", "Audit", "Govern", "audit.read", "tenant", () => import("./Audit")),
  page("/contracts", "Contracts", "Report", "report.read", "tenant", () => import("./Contracts")),
  page("/reports", "Status reports", "Report", "report.read", "project", () => import("./Reports")),
  page("/session-logs", "Session logs", "Report", "report.read", "project", () => import("./SessionLogs")),
  page("/executive", "Executive report", "Report", "report.read", "tenant", () => import("./Executive")),
];
