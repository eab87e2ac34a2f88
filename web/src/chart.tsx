// A uPlot time-series chart. uPlot draws on a canvas and styles through the CSSOM (element.style), which the
// Content Security Policy allows; its stylesheet is bundled by Vite.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series { label: string; values: (number | null)[]; color: string; fmt?: (v: number) => string }

/**
 * A uPlot made by `make` in the returned element, as wide as the element (again on every resize), destroyed when
 * the component goes or `deps` change. Shared by the line charts and the market's candles.
 */
export function useUPlot(make: (box: HTMLDivElement, width: number) => uPlot, height: number, deps: unknown[]) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const box = el.current;
    if (!box) return;
    const width = () => Math.max(280, box.clientWidth);
    plot.current = make(box, width());
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: width(), height }));
    ro.observe(box);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, deps);
  return { el, plot };
}

export function Chart(props: { id: string; times: number[]; series: Series[]; height?: number; yFmt?: (v: number) => string }) {
  const height = props.height ?? 220;
  const { el, plot } = useUPlot((box, width) => new uPlot({
    width,
    height,
    series: [{}, ...props.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: `${s.color}22`, value: (_u: uPlot, v: number | null) => (v === null ? '—' : (s.fmt ?? String)(v)) }))],
    axes: [{}, { values: (_u, ticks) => ticks.map((t) => (props.yFmt ? props.yFmt(t) : String(t))), size: 80 }],
    scales: { x: { time: true } },
    legend: { live: true },
  }, [props.times, ...props.series.map((s) => s.values)] as uPlot.AlignedData, box), height, [props.series.length]);
  useEffect(() => {
    plot.current?.setData([props.times, ...props.series.map((s) => s.values)] as uPlot.AlignedData);
  }, [props.times, props.series]);
  const points = props.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
  return <div class="chart" id={props.id} ref={el} data-points={points} />;
}
