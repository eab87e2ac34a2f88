import type { ComponentChildren } from 'preact';

/** One number on screen: data-k names the figure (see views.ts). */
export function N(props: { k: string; v: Record<string, string> }) {
  return <span class="num" data-k={props.k}>{props.v[props.k] ?? '—'}</span>;
}

export function Card(props: { title: string; children: ComponentChildren; id?: string; wide?: boolean; asOf?: number }) {
  return (
    <section class={`card${props.wide ? ' wide' : ''}`} id={props.id} data-asof={props.asOf}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

export function Stat(props: { label: string; k: string; v: Record<string, string>; sub?: string }) {
  return (
    <div class="stat">
      <div class="label">{props.label}</div>
      <N k={props.k} v={props.v} />
      {props.sub && <div class="sub"><N k={props.sub} v={props.v} /></div>}
    </div>
  );
}

export function Err(props: { e: unknown }) {
  if (!props.e) return null;
  return <p class="error" role="alert">{props.e instanceof Error ? props.e.message : String(props.e)}</p>;
}

export function Status(props: { s: string }) {
  return <span class={`badge ${props.s}`}>{props.s}</span>;
}
