import { describe, expect, it } from "vitest";

import { buildRequest, duration, pathParams, takesBody, topics } from "./runtime";
import type { Step } from "./runtime";

const PLACE = { tenant: "local", project: "orders", env: "dev" };

describe("the tester's request", () => {
  it("names path parameters in both styles", () => {
    expect(pathParams("/orders/:id")).toEqual(["id"]);
    expect(pathParams("/a/{x}/b/:y/:x")).toEqual(["x", "y"]);
    expect(pathParams("/orders")).toEqual([]);
  });

  it("goes to the tenant-qualified path with the body", () => {
    const request = buildRequest(PLACE, { path: "/orders", method: "POST" }, {}, [], { a: 1 });
    expect(request).toEqual({ url: "/p/local/orders/dev/orders", method: "POST", body: { a: 1 }, missing: [] });
  });

  it("fills and encodes path parameters, and lists the missing ones", () => {
    const step = { path: "/orders/:id/lines/:line", method: "get" };
    const filled = buildRequest(PLACE, step, { id: "ord 1/2", line: "3" }, [], undefined);
    expect(filled.url).toBe("/p/local/orders/dev/orders/ord%201%2F2/lines/3");
    expect(filled.method).toBe("GET");
    expect(buildRequest(PLACE, step, { id: "x" }, [], undefined).missing).toEqual(["line"]);
  });

  it("adds the query rows that have a name and drops the body of a GET", () => {
    const request = buildRequest(
      PLACE,
      { path: "/orders/:id", method: "GET" },
      { id: "o1" },
      [
        { key: "verbose", value: "1" },
        { key: " ", value: "ignored" },
        { key: "tag", value: "a&b" },
        { key: "tag", value: "c" },
      ],
      { ignored: true },
    );
    expect(request.url).toBe("/p/local/orders/dev/orders/o1?verbose=1&tag=a%26b&tag=c");
    expect(request.body).toBeUndefined();
  });

  it("encodes the place", () => {
    const request = buildRequest({ tenant: "t 1", project: "p", env: "e" }, { path: "/", method: "DELETE" }, {}, [], 1);
    expect(request.url).toBe("/p/t%201/p/e/");
    expect(request.body).toBeUndefined();
    expect(takesBody("put")).toBe(true);
  });
});

describe("topics and durations", () => {
  it("lists each subscribed topic with its subscribers", () => {
    const step = (name: string, subscribes: string[]) =>
      ({ name, subscribes, emits: [], type: "event", path: null, method: null, input_schema: null, body_schema: null }) as Step;
    const found = topics([step("B", ["order.ready"]), step("A", ["order.created", "order.ready"])]);
    expect(found.map((t) => [t.topic, t.subscribers.map((s) => s.name)])).toEqual([
      ["order.created", ["A"]],
      ["order.ready", ["B", "A"]],
    ]);
  });

  it("prints durations briefly", () => {
    expect(duration(0.345)).toBe("0.34 ms");
    expect(duration(12.26)).toBe("12.3 ms");
    expect(duration(1800)).toBe("1.80 s");
    expect(duration(null)).toBe("—");
  });
});
