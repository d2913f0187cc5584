// Charts in inline SVG, no chart library: horizontal bar charts sized to their box (so labels
// stay readable on a phone), each with a text alternative (an aria-label summary and a table).
import { useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";

/** 1, 2 or 5 times a power of ten, at least `value` (`round`: the nearest such number). */
export function niceNumber(value: number, round = false): number {
  if (!Number.isFinite(value) || value <= 0) return 1;
  const exponent = Math.floor(Math.log10(value));
  const power = 10 ** exponent;
  const fraction = value / power;
  let nice: number;
  if (round) nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
  else nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

/** Axis ticks from 0 to a round top at or above `max`: about `count` steps of 1, 2 or 5 × 10ⁿ. */
export function niceTicks(max: number, count = 4, integer = false): number[] {
  const top = Number.isFinite(max) && max > 0 ? max : 1;
  let step = niceNumber(top / count, true);
  if (integer) step = Math.max(1, Math.round(step));
  const last = Math.ceil(top / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; i * step <= last + step / 1e6; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** `value` on a linear scale from [0, domainMax] to [0, range], clamped to the range. */
export function scale(value: number, domainMax: number, range: number): number {
  if (!(domainMax > 0) || !Number.isFinite(value) || value <= 0) return 0;
  return Math.min(range, (value / domainMax) * range);
}

export type BarLayout = {
  ticks: number[];
  top: number;
  labelWidth: number;
  plotX: number;
  plotWidth: number;
  height: number;
  bars: { y: number; width: number }[];
};

/** Where the bars of `values` go in a chart `width` px wide (rows of `row` px under an axis). */
export function layoutBars(
  values: number[],
  width: number,
  options: { max?: number; integer?: boolean; row?: number; axis?: number; valueWidth?: number } = {},
): BarLayout {
  const row = options.row ?? 30;
  const axis = options.axis ?? 22;
  const valueWidth = options.valueWidth ?? 56;
  const labelWidth = Math.round(Math.min(180, Math.max(80, width * 0.34)));
  const plotX = labelWidth + 8;
  const plotWidth = Math.max(40, width - plotX - valueWidth);
  const highest = Math.max(0, ...values.filter((v) => Number.isFinite(v)));
  const ticks = options.max !== undefined ? niceTicks(options.max, 4, false) : niceTicks(highest, 4, options.integer);
  const top = options.max ?? ticks[ticks.length - 1];
  const bars = values.map((value, index) => ({
    y: axis + index * row,
    width: scale(value, top, plotWidth),
  }));
  return { ticks, top, labelWidth, plotX, plotWidth, height: axis + values.length * row + 4, bars };
}

/** The width of an element, followed as it changes (a fallback where nothing can measure). */
function useWidth(fallback = 560): [React.RefObject<HTMLDivElement | null>, number] {
  const ref = useRef<HTMLDivElement | null>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    const measure = () => {
      const measured = element.clientWidth;
      if (measured > 0) setWidth(Math.max(220, Math.floor(measured)));
    };
    measure();
    if (typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

export type Bar = { label: string; value: number; tone?: string; note?: string };

function clip(text: string, room: number): string {
  const fits = Math.max(4, Math.floor(room / 7)); // about 7 px a character at 12 px
  return text.length > fits ? `${text.slice(0, fits - 1)}…` : text;
}

/** A horizontal bar chart with its text alternative: an aria-label and a table on demand. */
export function BarChart(props: {
  title: string;
  bars: Bar[];
  format?: (value: number) => string;
  max?: number;
  integer?: boolean;
  valueTitle?: string;
  empty?: ReactNode;
  children?: ReactNode;
}) {
  const [ref, width] = useWidth();
  const format = props.format ?? ((v: number) => String(v));
  const layout = layoutBars(
    props.bars.map((b) => b.value),
    width,
    { max: props.max, integer: props.integer },
  );
  const summary = `${props.title}: ${
    props.bars.length ? props.bars.map((b) => `${b.label} ${format(b.value)}`).join(", ") : "no data"
  }`;
  return (
    <figure className="gv-chart">
      <figcaption>{props.title}</figcaption>
      <div ref={ref}>
        {props.bars.length === 0 ? (
          <p className="muted">{props.empty ?? "No data."}</p>
        ) : (
          <svg
            role="img"
            aria-label={summary}
            width={width}
            height={layout.height}
            viewBox={`0 0 ${width} ${layout.height}`}
          >
            {layout.ticks.map((tick) => {
              const x = layout.plotX + scale(tick, layout.top, layout.plotWidth);
              return (
                <g key={tick}>
                  <line className="axis" x1={x} x2={x} y1={16} y2={layout.height - 2} />
                  <text className="muted" x={x} y={12} textAnchor="middle">
                    {format(tick)}
                  </text>
                </g>
              );
            })}
            {props.bars.map((bar, index) => {
              const place = layout.bars[index];
              return (
                <g key={`${bar.label}-${index}`}>
                  <text x={layout.labelWidth} y={place.y + 17} textAnchor="end">
                    <title>{bar.label}</title>
                    {clip(bar.label, layout.labelWidth)}
                  </text>
                  <rect
                    className={`bar ${bar.tone ?? ""}`}
                    x={layout.plotX}
                    y={place.y + 4}
                    width={Math.max(bar.value > 0 ? 2 : 0, place.width)}
                    height={20}
                    rx={3}
                  />
                  <text x={layout.plotX + place.width + 6} y={place.y + 17}>
                    {format(bar.value)}
                  </text>
                </g>
              );
            })}
          </svg>
        )}
      </div>
      {props.bars.length ? (
        <details className="gv-details">
          <summary>Show as a table</summary>
          <div className="table-box" role="region" aria-label={`${props.title} as a table`} tabIndex={0}>
            <table>
              <thead>
                <tr>
                  <th scope="col">Item</th>
                  <th scope="col">{props.valueTitle ?? "Value"}</th>
                  {props.bars.some((b) => b.note) ? <th scope="col">Note</th> : null}
                </tr>
              </thead>
              <tbody>
                {props.bars.map((bar, index) => (
                  <tr key={`${bar.label}-${index}`}>
                    <td className="wrap">{bar.label}</td>
                    <td>{format(bar.value)}</td>
                    {props.bars.some((b) => b.note) ? <td>{bar.note ?? ""}</td> : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      ) : null}
      {props.children}
    </figure>
  );
}

export function percent(rate: number): string {
  if (!Number.isFinite(rate)) return "—";
  const value = rate * 100;
  return `${value === 0 || value >= 10 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1)}%`;
}

export type TimePoint = { start: string; end: string; executions: number; errors: number };

/** Column positions of `points` in a plot `width` px wide: x and width of each column. */
export function layoutColumns(count: number, width: number, left = 44, right = 8) {
  const plot = Math.max(40, width - left - right);
  const slot = count ? plot / count : plot;
  const gap = Math.min(4, slot * 0.2);
  return Array.from({ length: count }, (_, i) => ({ x: left + i * slot + gap / 2, width: Math.max(1, slot - gap) }));
}

/** Executions over time as columns (their errors in red at the foot) with the error rate as a
 * line, and the same as a table on demand. */
export function TimeChart(props: { title: string; points: TimePoint[]; label: (p: TimePoint) => string }) {
  const [ref, width] = useWidth();
  const height = 200;
  const top = 16;
  const bottom = 28;
  const plotHeight = height - top - bottom;
  const highest = Math.max(0, ...props.points.map((p) => p.executions));
  const ticks = niceTicks(highest, 4, true);
  const max = ticks[ticks.length - 1];
  const columns = layoutColumns(props.points.length, width);
  const y = (value: number) => top + plotHeight - scale(value, max, plotHeight);
  const rate = (p: TimePoint) => (p.executions ? p.errors / p.executions : 0);
  const line = props.points
    .map((p, i) => `${columns[i].x + columns[i].width / 2},${top + plotHeight - rate(p) * plotHeight}`)
    .join(" ");
  const total = props.points.reduce((n, p) => n + p.executions, 0);
  const errors = props.points.reduce((n, p) => n + p.errors, 0);
  const summary = `${props.title}: ${total} executions and ${errors} errors over ${props.points.length} periods`;
  const labelEvery = Math.max(1, Math.ceil(props.points.length / Math.max(1, Math.floor(width / 70))));
  return (
    <figure className="gv-chart">
      <figcaption>{props.title}</figcaption>
      <div ref={ref}>
        {props.points.length === 0 ? (
          <p className="muted">No data.</p>
        ) : (
          <svg role="img" aria-label={summary} width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
            {ticks.map((tick) => (
              <g key={tick}>
                <line className="axis" x1={44} x2={width - 8} y1={y(tick)} y2={y(tick)} />
                <text className="muted" x={40} y={y(tick) + 4} textAnchor="end">
                  {tick}
                </text>
              </g>
            ))}
            {props.points.map((p, i) => (
              <g key={p.start}>
                <title>{`${props.label(p)}: ${p.executions} executions, ${p.errors} errors`}</title>
                <rect className="bar" x={columns[i].x} y={y(p.executions)} width={columns[i].width} height={top + plotHeight - y(p.executions)} />
                <rect className="bar error" x={columns[i].x} y={y(p.errors)} width={columns[i].width} height={top + plotHeight - y(p.errors)} />
                {i % labelEvery === 0 ? (
                  <text className="muted" x={columns[i].x + columns[i].width / 2} y={height - 10} textAnchor="middle">
                    {props.label(p)}
                  </text>
                ) : null}
              </g>
            ))}
            <polyline className="rate" points={line} fill="none" />
          </svg>
        )}
      </div>
      <p className="muted small">Columns: executions (errors in red). Line: error rate, 0–100 % from foot to top.</p>
      {props.points.length ? (
        <details className="gv-details">
          <summary>Show as a table</summary>
          <div className="table-box" role="region" aria-label={`${props.title} as a table`} tabIndex={0}>
            <table>
              <thead>
                <tr>
                  <th scope="col">Period</th>
                  <th scope="col">Executions</th>
                  <th scope="col">Errors</th>
                  <th scope="col">Error rate</th>
                </tr>
              </thead>
              <tbody>
                {props.points.map((p) => (
                  <tr key={p.start}>
                    <td>{props.label(p)}</td>
                    <td>{p.executions}</td>
                    <td>{p.errors}</td>
                    <td>{percent(rate(p))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      ) : null}
    </figure>
  );
}
