// Units the way miners speak them. The browser tests format the API's numbers with these same functions and
// compare them with the text on screen, so a page that shows a stale or different number fails.

const HASH_UNITS = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s', 'EH/s', 'ZH/s'];

/** H/s → "12.34 TH/s" (three significant figures or more). */
export function hashrate(hs: number | null | undefined): string {
  if (hs === null || hs === undefined || !Number.isFinite(hs)) return '—';
  let v = hs;
  let u = 0;
  while (Math.abs(v) >= 1000 && u < HASH_UNITS.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v >= 100 ? 1 : 2)} ${HASH_UNITS[u]}`;
}

/** A PH/s decimal string (the market's unit) → hashrate text. */
export function phs(s: string | null | undefined): string {
  if (s === null || s === undefined) return '—';
  return hashrate(Number(s) * 1e15);
}

/** Satoshis (decimal string or number) → "0.00012345 BTC", exact (bigint arithmetic). */
export function btc(sat: string | number | bigint | null | undefined): string {
  if (sat === null || sat === undefined) return '—';
  const v = BigInt(sat);
  const neg = v < 0n;
  const a = neg ? -v : v;
  return `${neg ? '-' : ''}${a / 100_000_000n}.${(a % 100_000_000n).toString().padStart(8, '0')} BTC`;
}

/** sat/PH/day, whole satoshis. */
export function satPhDay(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return `${int(Math.round(v))} sat/PH/day`;
}

export function int(n: number | string | null | undefined): string {
  if (n === null || n === undefined) return '—';
  // Past 2^53 the digits are noise (and toString switches to exponents past 1e21): say it in scientific form.
  if (typeof n === 'number' && Math.abs(n) >= 2 ** 53) return n.toExponential(3);
  const s = typeof n === 'string' ? n : Math.round(n).toString();
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** 0.0123 → "1.23 %". */
export function pct(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return `${(x * 100).toFixed(digits)} %`;
}

/** A relative 95 % band → "± 12.3 %". */
export function band(rel: number | null | undefined): string {
  if (rel === null || rel === undefined) return '—';
  return `± ${(rel * 100).toFixed(1)} %`;
}

export function difficulty(d: number | null | undefined): string {
  if (d === null || d === undefined || !Number.isFinite(d)) return '—';
  if (d < 1000) return d.toPrecision(4).replace(/\.?0+$/, '');
  const units = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
  let v = d;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(2)} ${units[u]}`;
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export function short(hash: string): string {
  return hash.length > 20 ? `${hash.slice(0, 10)}…${hash.slice(-8)}` : hash;
}
