// One refresh at a time for all tabs: concurrent callers (in this tab, or in another tab
// through the broadcast) share one rotation of the refresh token, never use it twice.
import { afterEach, describe, expect, it, vi } from "vitest";

class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  request<T>(_name: string, work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

afterEach(() => {
  vi.unstubAllGlobals();
  vi.resetModules();
});

describe("refreshing the session", () => {
  it("rotates the refresh token once for callers that ask at the same time", async () => {
    vi.stubGlobal("navigator", { ...navigator, locks: new Mutex() });
    let rotations = 0;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        if (url === "/v1/auth/refresh") {
          rotations += 1;
          await new Promise((resolve) => setTimeout(resolve, 10));
          return new Response(JSON.stringify({ access_token: `t${rotations}`, expires_in: 900 }), {
            status: 200,
          });
        }
        return new Response("{}", { status: 200 });
      }),
    );
    const api = await import("./api");
    const tokens = await Promise.all([api.refresh(), api.refresh(), api.refresh()]);
    expect(rotations).toBe(1);
    expect(tokens).toEqual(["t1", "t1", "t1"]);
    expect(api.currentToken()).toBe("t1");
  });

  it("takes the token another tab refreshed instead of rotating again", async () => {
    vi.stubGlobal("navigator", { ...navigator, locks: new Mutex() });
    const fetch = vi.fn(async () => new Response("{}", { status: 500 }));
    vi.stubGlobal("fetch", fetch);
    const api = await import("./api");
    const other = new BroadcastChannel("cfp-session");
    other.postMessage({ token: "from-another-tab", expiresAt: Date.now() + 900_000 });
    await vi.waitFor(() => expect(api.currentToken()).toBe("from-another-tab"));
    other.close();
    expect(fetch).not.toHaveBeenCalled();
  });
});
