import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { BarChart, layoutBars, niceNumber, niceTicks, percent, scale } from "./charts";

describe("chart scaling", () => {
  it("rounds up to 1, 2 or 5 times a power of ten", () => {
    expect(niceNumber(0)).toBe(1);
    expect(niceNumber(-3)).toBe(1);
    expect(niceNumber(1)).toBe(1);
    expect(niceNumber(1.2)).toBe(2);
    expect(niceNumber(3)).toBe(5);
    expect(niceNumber(7)).toBe(10);
    expect(niceNumber(42)).toBe(50);
    expect(niceNumber(0.034)).toBeCloseTo(0.05);
    expect(niceNumber(2.6, true)).toBe(2);
  });

  it("makes ticks from zero to a round top covering the maximum", () => {
    expect(niceTicks(100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(87)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(3, 4, true)).toEqual([0, 1, 2, 3]);
    expect(niceTicks(0, 4, true)).toEqual([0, 1]);
    const rates = niceTicks(0.05);
    expect(rates[0]).toBe(0);
    expect(rates[rates.length - 1]).toBeCloseTo(0.05);
    expect(rates.every((t, i) => i === 0 || t > rates[i - 1])).toBe(true);
    for (const max of [1, 7, 13, 99, 101, 1234, 0.3]) {
      const ticks = niceTicks(max);
      expect(ticks[ticks.length - 1]).toBeGreaterThanOrEqual(max);
      expect(ticks.length).toBeLessThanOrEqual(8);
    }
  });

  it("scales linearly, clamps, and treats an empty domain as zero", () => {
    expect(scale(50, 100, 300)).toBe(150);
    expect(scale(100, 100, 300)).toBe(300);
    expect(scale(150, 100, 300)).toBe(300);
    expect(scale(-5, 100, 300)).toBe(0);
    expect(scale(5, 0, 300)).toBe(0);
    expect(scale(Number.NaN, 10, 300)).toBe(0);
  });

  it("lays out one bar per value inside the plot area", () => {
    const layout = layoutBars([10, 5, 0], 400, { integer: true });
    expect(layout.top).toBe(10);
    expect(layout.bars).toHaveLength(3);
    expect(layout.bars[0].width).toBeCloseTo(layout.plotWidth);
    expect(layout.bars[1].width).toBeCloseTo(layout.plotWidth / 2);
    expect(layout.bars[2].width).toBe(0);
    expect(layout.plotX + layout.plotWidth).toBeLessThanOrEqual(400);
    expect(layout.bars[1].y).toBeGreaterThan(layout.bars[0].y);
    // a fixed maximum (a rate of 1) wins over the data
    expect(layoutBars([0.5], 400, { max: 1 }).bars[0].width).toBeCloseTo(layoutBars([0.5], 400, { max: 1 }).plotWidth / 2);
  });

  it("formats rates as percentages", () => {
    expect(percent(0)).toBe("0%");
    expect(percent(0.25)).toBe("25%");
    expect(percent(0.0125)).toBe("1.3%");
    expect(percent(1)).toBe("100%");
  });
});

describe("the bar chart", () => {
  it("has a text alternative: an aria-label summary and a table", () => {
    render(
      <BarChart
        title="Executions per flow"
        valueTitle="Executions"
        bars={[
          { label: "orders", value: 12 },
          { label: "housekeeping", value: 3 },
        ]}
      />,
    );
    const image = screen.getByRole("img");
    expect(image.getAttribute("aria-label")).toBe("Executions per flow: orders 12, housekeeping 3");
    expect(image.querySelectorAll("rect")).toHaveLength(2);
    fireEvent.click(screen.getByText("Show as a table"));
    const rows = screen.getByRole("region", { name: "Executions per flow as a table" }).querySelectorAll("tbody tr");
    expect([...rows].map((r) => r.textContent)).toEqual(["orders12", "housekeeping3"]);
  });

  it("says so when there is nothing to draw", () => {
    render(<BarChart title="Errors" bars={[]} empty="Nothing ran." />);
    expect(screen.queryByRole("img")).toBeNull();
    expect(screen.getByText("Nothing ran.")).toBeTruthy();
  });
});

describe("the chart over time", () => {
  it("lays out one column per period and says the totals", async () => {
    const { layoutColumns, TimeChart } = await import("./charts");
    const columns = layoutColumns(4, 244);
    expect(columns).toHaveLength(4);
    expect(columns[3].x + columns[3].width).toBeLessThanOrEqual(244 - 8);
    const { render, screen } = await import("@testing-library/react");
    render(
      <TimeChart
        title="Executions over time"
        label={(p) => p.start.slice(5, 10)}
        points={[
          { start: "2026-12-01T00:00:00.000Z", end: "2026-12-02T00:00:00.000Z", executions: 4, errors: 1 },
          { start: "2026-12-02T00:00:00.000Z", end: "2026-12-03T00:00:00.000Z", executions: 0, errors: 0 },
        ]}
      />,
    );
    expect(screen.getByRole("img").getAttribute("aria-label")).toBe(
      "Executions over time: 4 executions and 1 errors over 2 periods",
    );
    expect(screen.getByText("25%")).toBeTruthy();
  });
});
