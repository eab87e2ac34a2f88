// Latency as the wire sees it: a few seconds of the pool's loopback traffic captured with tcpdump, each submit
// matched with its answer by JSON-RPC id. The generator's own figure (submit written to answer read) also holds
// its scheduling: with 10k connections it shares a core with Postgres ingesting the pool's shares, and its p99
// read 108-427 ms for hashhub and 15-139 ms for ckpool at 20k/s while the wire showed 19 and 11 ms. Both pools are
// sampled the same way. Needs tcpdump and the right to capture (root); without them there is no wire figure.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

export interface WireLatency { answers: number; p50: number; p99: number; p999: number; max: number }

let unavailable: string | null | undefined;

/** Why no capture can be made here, or null when it can (checked once). */
export function wireCaptureUnavailable(): string | null {
  if (unavailable !== undefined) return unavailable;
  const r = spawnSync('tcpdump', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) unavailable = 'no tcpdump';
  else if (process.getuid?.() !== 0) unavailable = 'not root (tcpdump cannot capture)';
  else unavailable = null;
  return unavailable;
}

/**
 * Captures `seconds` of TCP traffic to and from 127.0.0.1:`port` after `delayMs`, on core 1 (the generator's, not
 * the pool's), and resolves to the latency of the submits answered within it; null if the capture failed.
 */
export async function sampleWireLatency(port: number, delayMs: number, seconds: number, file: string): Promise<WireLatency | null> {
  await new Promise((r) => setTimeout(r, delayMs));
  const cap = spawn('taskset', ['-c', '1', 'timeout', String(seconds), 'tcpdump', '-i', 'lo', '-s', '512', '-B', '65536', '-w', file, `tcp port ${port}`], { stdio: 'ignore' });
  await new Promise((r) => cap.once('exit', r));
  try {
    return latencyFromPcap(readFileSync(file), port);
  } catch {
    return null;
  } finally {
    // HASHHUB_BENCH_KEEP_PCAP=<dir>: keep each capture there, to look at when the slow answers came.
    // (Only a capture that exists: a throw here would replace the `return null` of a failed capture.)
    const keep = process.env.HASHHUB_BENCH_KEEP_PCAP;
    if (keep && existsSync(file)) copyFileSync(file, path.join(keep, path.basename(file)));
    rmSync(file, { force: true });
  }
}

const SUBMIT = /\{\s*"id"\s*:\s*(\d+)\s*,\s*"method"\s*:\s*"mining\.submit"/g;
/** Any numeric id in the pool's lines: answers carry their request's (either layout); notifications carry null. */
const ANSWER = /"id"\s*:\s*(\d+)/g;

/** Submit-to-answer times (ms) from a pcap of loopback traffic (Ethernet or cooked framing, IPv4). */
export function latencyFromPcap(buf: Buffer, port: number): WireLatency | null {
  const magic = buf.readUInt32LE(0);
  const nano = magic === 0xa1b23c4d;
  if (!nano && magic !== 0xa1b2c3d4) return null;
  const linkType = buf.readUInt32LE(20);
  const linkHeader = linkType === 1 ? 14 : linkType === 113 ? 16 : linkType === 0 ? 4 : -1;
  if (linkHeader < 0) return null;
  const sent = new Map<string, number>();
  const times: number[] = [];
  for (let at = 24; at + 16 <= buf.length;) {
    const t = buf.readUInt32LE(at) * 1000 + buf.readUInt32LE(at + 4) / (nano ? 1e6 : 1e3);
    const len = buf.readUInt32LE(at + 8);
    const ip = at + 16 + linkHeader;
    at += 16 + len;
    if ((buf[ip] >> 4) !== 4) continue;
    const tcp = ip + (buf[ip] & 15) * 4;
    const srcPort = buf.readUInt16BE(tcp);
    const payload = buf.toString('latin1', tcp + (buf[tcp + 12] >> 4) * 4, at);
    if (payload.length === 0) continue;
    if (srcPort !== port) {
      for (const m of payload.matchAll(SUBMIT)) sent.set(m[1], t);
    } else {
      for (const m of payload.matchAll(ANSWER)) {
        const t0 = sent.get(m[1]);
        if (t0 === undefined) continue;
        sent.delete(m[1]);
        times.push(t - t0);
      }
    }
  }
  if (times.length === 0) return null;
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  return { answers: times.length, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: times[times.length - 1] };
}
