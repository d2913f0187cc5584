// The project's flows (`/flows`): a card per flow with its size, each opening its canvas.
// No React Flow here: the canvas (and the library) load only when a flow is opened.
import "./flow/flows.css";

import type { Page as Listing } from "../api";
import { Empty, ErrorBox, Loading, Page } from "../components/ui";
import { useApi } from "../hooks";
import { Link } from "../router";
import { useSession } from "../session";
import type { FlowSummary } from "./flow/graph";

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

export default function FlowsPage() {
  const { runtime, place } = useSession();
  const flows = useApi<Listing<FlowSummary>>(runtime ? `${runtime}/flows` : null, {
    tenant: place.tenant,
  });
  const items = flows.data?.items ?? [];
  return (
    <Page
      title="Flows"
      actions={
        runtime ? (
          <button type="button" className="btn plain" onClick={flows.reload}>
            Refresh
          </button>
        ) : undefined
      }
    >
      {!runtime ? <Empty>Choose a project and an environment to see its flows.</Empty> : null}
      <ErrorBox error={flows.error} />
      <Loading when={flows.loading && !flows.data} />
      {flows.data && !items.length ? (
        <Empty>
          This project has no flows yet: a step joins a flow by naming it in its config&apos;s{" "}
          <code>flows</code>.
        </Empty>
      ) : null}
      {items.length ? (
        <ul className="flow-cards" aria-label="Flows">
          {items.map((flow) => (
            <li key={flow.name}>
              <Link to={`/flows/${encodeURIComponent(flow.name)}`} className="flow-card">
                <span className="flow-card-name">{flow.name}</span>
                <span className="muted">
                  {plural(flow.steps, "step", "steps")} · {plural(flow.edges, "edge", "edges")}
                </span>
              </Link>
            </li>
          ))}
        </ul>
      ) : null}
    </Page>
  );
}
