/**
 * Hand-written SVG charts for docs/: horizontal bars (one or more series
 * per row) and a line over time with optional reference lines and a band.
 * No dependencies; the output is plain text that diffs well.
 *
 * @module
 */

const FONT = `font-family="system-ui, -apple-system, 'Segoe UI', sans-serif"`;
const COLORS = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#9D755D"];

function esc(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

function num(n: number): string {
  return String(Math.round(n * 10) / 10);
}

function label(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** A "nice" axis maximum and step for values up to `max`. */
function niceAxis(max: number, ticks = 5): { max: number; step: number } {
  if (max <= 0) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  // A hair over a step (10.002 on a step of 2.5) does not earn a whole step more.
  return { max: Math.ceil(max / step - 1e-3) * step, step };
}

function doc(width: number, height: number, title: string, subtitle: string, body: string[]) {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${
      esc(title)
    }">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" ${FONT} font-size="16" font-weight="600" fill="#222">${esc(title)}</text>`,
    `<text x="16" y="42" ${FONT} font-size="11" fill="#666">${esc(subtitle)}</text>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

/** One row of a bar chart: a label and one value per series (undefined: not measured). */
export interface BarRow {
  label: string;
  values: (number | undefined)[];
  /** Text after the bars instead of the values. */
  note?: string;
}

/** Options for {@linkcode barChart}. */
export interface BarChartOptions {
  title: string;
  subtitle: string;
  /** Unit on the axis, e.g. "events/s". */
  unit: string;
  /** Names of the series (a legend is drawn when there are two or more). */
  series: string[];
  rows: BarRow[];
  /**
   * Values above this are drawn cut at the axis end (marked with a break),
   * so that one outlier does not flatten every other bar (default: none).
   */
  clipAt?: number;
  /** Decimals of value labels (default 0). */
  digits?: number;
}

/** Horizontal bars, one group per row, one bar per series. */
export function barChart(o: BarChartOptions): string {
  const width = 760;
  const left = 170;
  const right = 150;
  const barH = 16;
  const gap = 4;
  const groupH = o.series.length * (barH + gap) + 10;
  const top = 60 + (o.series.length > 1 ? 18 : 0);
  const height = top + o.rows.length * groupH + 40;
  const all = o.rows.flatMap((r) => r.values.filter((v) => v !== undefined));
  const axis = niceAxis(Math.min(Math.max(...all), o.clipAt ?? Infinity));
  const plotW = width - left - right;
  const x = (v: number) => left + (Math.min(v, axis.max) / axis.max) * plotW;
  const body: string[] = [];
  if (o.series.length > 1) {
    let lx = left;
    o.series.forEach((s, i) => {
      if (i > 0) lx += 30 + o.series[i - 1]!.length * 6.5;
      body.push(
        `<rect x="${lx}" y="52" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`,
        `<text x="${lx + 18}" y="62" ${FONT} font-size="12" fill="#333">${esc(s)}</text>`,
      );
    });
  }
  const bottom = top + o.rows.length * groupH;
  for (let v = 0; v <= axis.max + axis.step / 2; v += axis.step) {
    body.push(
      `<line x1="${num(x(v))}" y1="${top - 4}" x2="${num(x(v))}" y2="${bottom}" stroke="#e5e5e5"/>`,
      `<text x="${num(x(v))}" y="${
        bottom + 16
      }" ${FONT} font-size="11" fill="#666" text-anchor="middle">${label(v, 2)}</text>`,
    );
  }
  body.push(
    `<text x="${left + plotW / 2}" y="${
      bottom + 32
    }" ${FONT} font-size="11" fill="#444" text-anchor="middle">${esc(o.unit)}</text>`,
  );
  o.rows.forEach((row, r) => {
    const y0 = top + r * groupH;
    body.push(
      `<text x="${left - 8}" y="${
        num(y0 + (groupH - 10) / 2 + 4)
      }" ${FONT} font-size="12" fill="#222" text-anchor="end">${esc(row.label)}</text>`,
    );
    row.values.forEach((v, s) => {
      const y = y0 + s * (barH + gap);
      if (v === undefined) {
        body.push(
          `<text x="${left + 6}" y="${y + barH - 4}" ${FONT} font-size="11" fill="#888">n/a</text>`,
        );
        return;
      }
      const w = Math.max(1, x(v) - left);
      const color = COLORS[s % COLORS.length];
      body.push(
        `<rect x="${left}" y="${y}" width="${num(w)}" height="${barH}" fill="${color}"/>`,
      );
      if (v > axis.max) {
        // A white zig-zag across the bar's end: it goes on beyond the axis.
        const bx = left + plotW - 14;
        body.push(
          `<path d="M${bx} ${y - 1} l4 ${barH / 2 + 1} l-4 ${barH / 2 + 1} M${bx + 5} ${y - 1} l4 ${
            barH / 2 + 1
          } l-4 ${barH / 2 + 1}" stroke="#fff" stroke-width="2" fill="none"/>`,
        );
      }
      const text = row.note !== undefined && s === row.values.length - 1
        ? `${label(v, o.digits)} ${row.note}`
        : label(v, o.digits);
      body.push(
        `<text x="${num(left + w + 6)}" y="${y + barH - 4}" ${FONT} font-size="11" fill="#333">${
          esc(text)
        }</text>`,
      );
    });
  });
  return doc(width, height, o.title, o.subtitle, body);
}

/** A horizontal reference line of a line chart. */
export interface ReferenceLine {
  value: number;
  label: string;
}

/** Options for {@linkcode lineChart}. */
export interface LineChartOptions {
  title: string;
  subtitle: string;
  xUnit: string;
  yUnit: string;
  /** Points in order of x. */
  points: { x: number; y: number }[];
  /** Dashed horizontal lines (idle RSS, a limit...). */
  references?: ReferenceLine[];
  /** A shaded horizontal band (the +/-10% of the soak). */
  band?: { from: number; to: number; label: string };
  /** A dashed vertical line (the end of the warm-up). */
  marker?: { x: number; label: string };
  /** Start the y axis at zero (default true). */
  yFromZero?: boolean;
}

/** A line over time with reference lines, a band and a marker. */
export function lineChart(o: LineChartOptions): string {
  const width = 760;
  const height = 340;
  const left = 70;
  const right = 170;
  const top = 60;
  const bottom = height - 50;
  const xs = o.points.map((p) => p.x);
  const ys = [
    ...o.points.map((p) => p.y),
    ...(o.references ?? []).map((r) => r.value),
    ...(o.band === undefined ? [] : [o.band.from, o.band.to]),
  ];
  const xAxis = niceAxis(Math.max(...xs, 1e-9));
  const yMinRaw = o.yFromZero === false ? Math.min(...ys) : 0;
  const yAxisTop = niceAxis(Math.max(...ys) - yMinRaw);
  const yMin = o.yFromZero === false ? Math.floor(yMinRaw / yAxisTop.step) * yAxisTop.step : 0;
  const yAxis = niceAxis(Math.max(...ys) - yMin);
  const x = (v: number) => left + (v / xAxis.max) * (width - left - right);
  const y = (v: number) => bottom - ((v - yMin) / yAxis.max) * (bottom - top);
  const body: string[] = [];
  for (let v = 0; v <= yAxis.max + yAxis.step / 2; v += yAxis.step) {
    body.push(
      `<line x1="${left}" y1="${num(y(v + yMin))}" x2="${width - right}" y2="${
        num(y(v + yMin))
      }" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${
        num(y(v + yMin) + 4)
      }" ${FONT} font-size="11" fill="#666" text-anchor="end">${label(v + yMin, 1)}</text>`,
    );
  }
  for (let v = 0; v <= xAxis.max + xAxis.step / 2; v += xAxis.step) {
    body.push(
      `<text x="${num(x(v))}" y="${
        bottom + 16
      }" ${FONT} font-size="11" fill="#666" text-anchor="middle">${label(v, 2)}</text>`,
    );
  }
  body.push(
    `<line x1="${left}" y1="${bottom}" x2="${width - right}" y2="${bottom}" stroke="#999"/>`,
    `<text x="${(left + width - right) / 2}" y="${
      bottom + 34
    }" ${FONT} font-size="11" fill="#444" text-anchor="middle">${esc(o.xUnit)}</text>`,
    `<text x="16" y="${
      (top + bottom) / 2
    }" ${FONT} font-size="11" fill="#444" text-anchor="middle" transform="rotate(-90 16 ${
      (top + bottom) / 2
    })">${esc(o.yUnit)}</text>`,
  );
  if (o.band !== undefined) {
    body.push(
      `<rect x="${left}" y="${num(y(o.band.to))}" width="${width - left - right}" height="${
        num(y(o.band.from) - y(o.band.to))
      }" fill="#54A24B" fill-opacity="0.12"/>`,
      `<text x="${width - right + 6}" y="${
        num(y(o.band.to) + 4)
      }" ${FONT} font-size="11" fill="#3b7a35">${esc(o.band.label)}</text>`,
    );
  }
  for (const r of o.references ?? []) {
    body.push(
      `<line x1="${left}" y1="${num(y(r.value))}" x2="${width - right}" y2="${
        num(y(r.value))
      }" stroke="#888" stroke-dasharray="5 4"/>`,
      `<text x="${width - right + 6}" y="${
        num(y(r.value) + 4)
      }" ${FONT} font-size="11" fill="#555">${esc(r.label)}</text>`,
    );
  }
  if (o.marker !== undefined) {
    body.push(
      `<line x1="${num(x(o.marker.x))}" y1="${top}" x2="${
        num(x(o.marker.x))
      }" y2="${bottom}" stroke="#B279A2" stroke-dasharray="3 3"/>`,
      `<text x="${num(x(o.marker.x) + 4)}" y="${top + 10}" ${FONT} font-size="11" fill="#B279A2">${
        esc(o.marker.label)
      }</text>`,
    );
  }
  const path = o.points.map((p, i) => `${i === 0 ? "M" : "L"}${num(x(p.x))} ${num(y(p.y))}`)
    .join(" ");
  body.push(`<path d="${path}" fill="none" stroke="${COLORS[0]}" stroke-width="2"/>`);
  if (o.points.length <= 80) {
    for (const p of o.points) {
      body.push(
        `<circle cx="${num(x(p.x))}" cy="${num(y(p.y))}" r="2.5" fill="${COLORS[0]}"/>`,
      );
    }
  }
  return doc(width, height, o.title, o.subtitle, body);
}

/** A chart's file name: `<base>.svg`, or `<base>_<flags>.svg` for a run with V8 flags. */
export function chartFile(base: string, v8Flags?: string): string {
  if (v8Flags === undefined || v8Flags === "") return `${base}.svg`;
  const slug = v8Flags.replace(/^-+/, "").replace(/[^a-zA-Z0-9]+/g, "-").replace(/-+$/, "");
  return `${base}_${slug}.svg`;
}

/** Writes a chart into `dir` (created if missing); returns its path. */
export async function writeChart(dir: string, file: string, svg: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir.replace(/\/$/, "")}/${file}`;
  await Deno.writeTextFile(path, svg);
  return path;
}
