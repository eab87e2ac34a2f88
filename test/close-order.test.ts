// Lines a session has read but not yet handled (held for a later turn: readTurnBudgetMs 0) are shares the miner
// sent, any of which may be a block: on every way a connection ends they are recorded before the host hears of the
// close (onClose, exactly once), except for an abusive peer; over TCP and TLS. Swapping the drain and the server's
// cleanup in StratumSession.onSocketClosed fails the FIN and RST cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import type { StratumSession } from '../src/stratum/session.ts';
import { startTestPool, solveShare } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';

const D = 1e-7;
const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-close-order-'));
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
  '-subj', '/CN=localhost', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
const cert = readFileSync(path.join(dir, 'cert.pem'));
const key = readFileSync(path.join(dir, 'key.pem'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

async function setup() {
  const r = await startTestPool(new StubNode(), {
    readTurnBudgetMs: 0, messagesPerSecond: 20, messageBurst: 40, readLinesPerSecond: 1e9,
    vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: D, maxDifficulty: D }, initialDifficulty: D,
    tls: { port: 0, cert, key },
  });
  const events: string[] = [];
  const closes = new Map<StratumSession, number>();
  r.shareLog.onShare((e) => { if (e.outcome === 'accepted') events.push('share'); });
  const orig = r.pool.onClose.bind(r.pool);
  r.pool.onClose = (s: StratumSession) => { events.push('close'); closes.set(s, (closes.get(s) ?? 0) + 1); orig(s); };
  return { ...r, events, closes };
}

type Sock = net.Socket | tls.TLSSocket;
async function miner(port: number, secure: boolean, ip: string) {
  const socket: Sock = secure
    ? tls.connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' })
    : net.connect({ host: '127.0.0.1', port, localAddress: ip });
  socket.on('error', () => {});
  await new Promise<void>((res, rej) => { socket.once(secure ? 'secureConnect' : 'connect', () => res()); socket.once('error', rej); });
  let buf = '';
  const msgs: Record<string, unknown>[] = [];
  socket.on('data', (d) => { buf += d.toString(); let i; while ((i = buf.indexOf('\n')) >= 0) { msgs.push(JSON.parse(buf.slice(0, i))); buf = buf.slice(i + 1); } });
  socket.write('{"id":2,"method":"mining.subscribe","params":["x/1"]}\n{"id":4,"method":"mining.authorize","params":["acct.w1","x"]}\n');
  const end = Date.now() + 5000;
  while (!msgs.some((m) => m.method === 'mining.notify') && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  const sub = msgs.find((m) => m.id === 2)!;
  const notify = msgs.find((m) => m.method === 'mining.notify')!;
  const [, en1, en2Size] = sub.result as [unknown, string, number];
  const shares = (n: number) => {
    let text = '';
    for (let i = 0; i < n; i++) {
      const sh = solveShare(notify as never, en1, en2Size, D, { en2: i.toString(16).padStart(en2Size * 2, '0') });
      text += JSON.stringify({ id: 1000 + i, method: 'mining.submit', params: sh }) + '\n';
    }
    return text;
  };
  return { socket, shares };
}

/** Wait until the session holds unparsed lines (the framer's held bytes) and nothing more is in flight. */
async function untilHeld(s: StratumSession, bytes: number) {
  const fr = (s as unknown as { framer: { heldBytes: number } }).framer;
  for (let t = 0; t < 20000 && fr.heldBytes < bytes; t++) await new Promise((r) => setImmediate(r));
  return fr.heldBytes;
}

const N = 300;
for (const secure of [false, true]) {
  for (const how of ['fin', 'rst', 'pool-close', 'shutdown', 'ban'] as const) {
    test(`${secure ? 'TLS' : 'TCP'} ${how}: held shares recorded before onClose, onClose once`, async () => {
      const p = await setup();
      let stopped = false;
      try {
        const m = await miner(secure ? p.tlsPort! : p.port, secure, '127.0.3.1');
        const text = m.shares(N);
        const before = p.events.length;
        m.socket.write(text);
        const s = [...p.pool.server.sessions][0];
        const held = await untilHeld(s, text.length / 2);
        assert.ok(held > 0, 'lines are held when the close comes');
        if (how === 'fin') m.socket.end();
        else if (how === 'rst') { if (secure) m.socket.destroy(); else (m.socket as net.Socket).resetAndDestroy(); }
        else if (how === 'pool-close') s.close('test');
        else if (how === 'ban') p.pool.server.ban(s, 'test');
        else { await p.pool.stop(0); stopped = true; }
        const end = Date.now() + 5000;
        while (p.pool.server.sessions.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        await new Promise((r) => setTimeout(r, 50));
        const ev = p.events.slice(before);
        const ci = ev.indexOf('close');
        assert.ok(ci >= 0, 'onClose ran');
        assert.equal(ev.slice(ci + 1).filter((e) => e === 'share').length, 0, 'no share recorded after onClose');
        assert.deepEqual([...p.closes.values()], [1], 'onClose once');
        const recorded = ev.filter((e) => e === 'share').length;
        if (how === 'ban') assert.ok(recorded < N, `abusive close does not drain (${recorded})`);
        else assert.equal(recorded, N, `every share read is recorded (${recorded}/${N}, held ${held})`);
        const srv = p.pool.server as unknown as { perIp: Map<string, number>; stats: { connections: number } };
        assert.equal(srv.perIp.size, 0);
        assert.equal(srv.stats.connections, 0);
      } finally {
        if (!stopped) await p.pool.stop(50);
      }
    });
  }
}
