// OHLC candlesticks on uPlot. uPlot has no candle series type; its own demo (demos/candlestick-ohlc.html) does
// what this does: four series (open, high, low, close) that uPlot scales and lists in the legend but does not
// stroke, and a draw hook that paints each candle on the plot's canvas — a high–low wick and an open–close body,
// green when the price closed up, red when down. Canvas only, so the strict CSP holds.
import { useEffect } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useUPlot } from './chart.tsx';
import type { Candle } from './views.ts';

const UP = '#1a7f37';
const DOWN = '#cf222e';

type Columns = [number[], number[], number[], number[], number[]];

function columns(candles: readonly Candle[]): Columns {
  return [candles.map((c) => Date.parse(c.startsAt) / 1000), candles.map((c) => c.open), candles.map((c) => c.high), candles.map((c) => c.low), candles.map((c) => c.close)];
}

/** Paint the candles of u.data (x, open, high, low, close) inside the plot area; `seconds` is one candle's span.
 *  Returns how many were painted. */
function drawCandles(u: uPlot, seconds: number): number {
  const [t, o, h, l, c] = u.data as unknown as Columns;
  if (!t.length) return 0;
  const ctx = u.ctx;
  const px = uPlot.pxRatio;
  // A body is 60 % of a candle's span on screen, between 3 and 24 CSS pixels.
  const span = Math.abs(u.valToPos(t[0] + seconds, 'x', true) - u.valToPos(t[0], 'x', true));
  const body = Math.max(3 * px, Math.min(24 * px, span * 0.6));
  ctx.save();
  ctx.beginPath();
  ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
  ctx.clip();
  for (let i = 0; i < t.length; i++) {
    const x = Math.round(u.valToPos(t[i], 'x', true));
    const [yo, yh, yl, yc] = [o[i], h[i], l[i], c[i]].map((v) => Math.round(u.valToPos(v, 'y', true)));
    ctx.fillStyle = c[i] >= o[i] ? UP : DOWN;
    ctx.fillRect(x - Math.max(1, Math.round(px / 2)), yh, Math.max(1, Math.round(px)), Math.max(1, yl - yh));
    // A candle whose open equals its close is a flat bar, still visible.
    ctx.fillRect(Math.round(x - body / 2), Math.min(yo, yc), Math.round(body), Math.max(Math.round(2 * px), Math.abs(yc - yo)));
  }
  ctx.restore();
  return t.length;
}

export function CandleChart(props: { id: string; candles: Candle[]; seconds: number; height?: number; yFmt?: (v: number) => string }) {
  const height = props.height ?? 220;
  const { el, plot } = useUPlot((box, width) => {
    const fmt = (v: number | null) => (v === null ? '—' : props.yFmt ? props.yFmt(v) : String(v));
    // Not stroked (the draw hook paints the candles), but scaled and shown in the legend.
    const hidden = (label: string): uPlot.Series => ({ label, paths: () => null, points: { show: false }, value: (_u, v) => fmt(v) });
    const opts: uPlot.Options = {
      width,
      height,
      scales: {
        // A candle of room at both ends, from the data itself: with a single point uPlot widens a time scale by
        // 86,400,000 (a day in ms, but this scale is in seconds), which would squeeze one candle into a dot.
        x: { time: true, range: (u) => {
          const t = u.data[0];
          return t.length ? [t[0] - props.seconds, t[t.length - 1] + props.seconds] : [Date.now() / 1000 - 3600, Date.now() / 1000];
        } },
        // Around the prices, not from zero: a market moves by a few percent.
        y: { range: (_u, min, max) => {
          if (min === null || max === null) return [0, 1];
          const pad = Math.max((max - min) * 0.1, max * 0.02, 1);
          return [Math.max(0, min - pad), max + pad];
        } },
      },
      series: [{}, hidden('open'), hidden('high'), hidden('low'), hidden('close')],
      axes: [{}, { values: (_u, ticks) => ticks.map((x) => fmt(x)), size: 80 }],
      // data-drawn: the candles painted by the last draw (what the browser test counts against the API's answer).
      hooks: { draw: [(u) => box.setAttribute('data-drawn', String(drawCandles(u, props.seconds)))] },
      legend: { live: true },
    };
    return new uPlot(opts, columns(props.candles) as uPlot.AlignedData, box);
  }, height, [props.seconds]);
  useEffect(() => {
    plot.current?.setData(columns(props.candles) as uPlot.AlignedData);
  }, [props.candles]);
  return <div class="chart" id={props.id} ref={el} data-points={props.candles.length} />;
}
