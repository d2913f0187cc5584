import { cleanup, render, screen } from "@testing-library/react";

let runtime: string | null = "/v1/projects/orders/envs/dev";

vi.mock("../../session", () => ({
  useSession: () => ({
    state: "signed-in",
    place: { tenant: "local", project: "orders", env: "dev" },
    runtime,
    can: () => true,
  }),
}));

function answer(items: unknown[]) {
  const asked: { url: string; tenant: string | undefined }[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init: RequestInit) => {
      asked.push({ url, tenant: (init.headers as Record<string, string>)["x-tenant-id"] });
      return Response.json({ items, next_cursor: null });
    }),
  );
  return asked;
}

async function renderPage() {
  const { default: FlowsPage } = await import("../Flows");
  return render(<FlowsPage />);
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  runtime = "/v1/projects/orders/envs/dev";
});

describe("Flows", () => {
  it("lists the project's flows as links to their canvas", async () => {
    const asked = answer([
      { name: "housekeeping", steps: 2, edges: 1 },
      { name: "orders & more", steps: 8, edges: 8 },
    ]);
    await renderPage();

    const link = await screen.findByRole("link", { name: /orders & more/ });
    expect(link.getAttribute("href")).toBe("#/flows/orders%20%26%20more");
    expect(link.textContent).toContain("8 steps · 8 edges");
    expect(screen.getByRole("link", { name: /housekeeping/ }).textContent).toContain("2 steps · 1 edge");
    expect(asked).toEqual([{ url: "/v1/projects/orders/envs/dev/flows", tenant: "local" }]);
  });

  it("says how a project gets a flow when it has none", async () => {
    answer([]);
    await renderPage();

    expect(await screen.findByText(/has no flows yet/)).toBeTruthy();
  });

  it("asks for a project and environment first", async () => {
    runtime = null;
    const asked = answer([]);
    await renderPage();

    expect(screen.getByText(/Choose a project and an environment/)).toBeTruthy();
    expect(asked).toEqual([]);
  });
});
