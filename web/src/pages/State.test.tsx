import { fireEvent, render, screen, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { cleanUpAfterEach, fakeSession, routeFetch, RUNTIME } from "./run/testkit";

const session = vi.hoisted(() => ({ current: null as unknown }));
vi.mock("../session", () => ({ useSession: () => session.current }));

import StatePage from "./State";

beforeEach(() => {
  session.current = fakeSession(["state.read"]);
  window.location.hash = "#/state";
  routeFetch((call) => {
    const path = call.url.split("?")[0];
    if (path === `${RUNTIME}/state`) return { body: { items: [{ group: "orders" }, { group: "stats" }], next_cursor: null } };
    if (path === `${RUNTIME}/state/orders`) {
      return { body: { items: [{ key: "o1", value: { total: 2, status: "booked" } }], next_cursor: null } };
    }
    if (path === `${RUNTIME}/state/orders/o1`) {
      return { body: { group: "orders", key: "o1", value: { total: 2, status: "shipped" } } };
    }
    return undefined;
  });
});

cleanUpAfterEach();

describe("state", () => {
  it("walks from groups to keys to one value", async () => {
    render(<StatePage params={{}} />);
    fireEvent.click(await screen.findByRole("button", { name: "orders" }));
    expect(screen.getByRole("button", { name: "orders" }).getAttribute("aria-pressed")).toBe("true");
    const table = await screen.findByRole("region", { name: "Keys and values of orders" });
    expect(table.textContent).toContain('{"total":2,"status":"booked"}');
    fireEvent.click(within(table).getByRole("button", { name: "o1" }));
    const sheet = await screen.findByRole("dialog", { name: "orders / o1" });
    expect((await within(sheet).findByLabelText("Value of orders/o1")).textContent).toContain('"status": "shipped"');
    fireEvent.click(within(sheet).getByRole("button", { name: "Close" }));
    expect(screen.queryByRole("dialog")).toBeNull();
  });
});
