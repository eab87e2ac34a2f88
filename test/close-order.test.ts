// Lines a session has read but not yet handled (held for a later turn: readTurnBudgetMs 0) are shares the miner
// sent, any of which may be a block: on every way a connection ends they are recorded before the host hears of the
// close (onClose, exactly once), an abusive peer's too; over TCP and TLS. Swapping the drain and the server's
// cleanup in StratumSession.onSocketClosed fails the TCP RST and the TLS FIN and RST cases (a TCP socket reads its FIN
// only after every line before it: nothing is held then); dropping the held lines at a close fails all but TCP FIN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { StratumSession } from '../src/stratum/session.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { FLOOD_DIFFICULTY, floodMiner, floodPool } from './helpers/flood.ts';
import { startTestPool } from './helpers/pool.ts';
import { StubNode } from './helpers/stub-node.ts';
import { LineClient } from './helpers/line-client.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-close-order-'));
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
  '-subj', '/CN=localhost', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
const cert = readFileSync(path.join(dir, 'cert.pem'));
const key = readFileSync(path.join(dir, 'key.pem'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

async function setup() {
  const r = await floodPool(0, { tls: { port: 0, cert, key } });
  const events: string[] = [];
  const closes = new Map<StratumSession, number>();
  r.shareLog.onShare((e) => { if (e.outcome === 'accepted') events.push('share'); });
  const orig = r.pool.onClose.bind(r.pool);
  r.pool.onClose = (s: StratumSession) => { events.push('close'); closes.set(s, (closes.get(s) ?? 0) + 1); orig(s); };
  return { ...r, events, closes };
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
        const m = await floodMiner(secure
          ? new LineClient(tls.connect({ host: '127.0.0.1', port: p.tlsPort!, ca: cert, servername: 'localhost' }))
          : new LineClient(p.port, '127.0.3.1'));
        const text = m.shares(N);
        const before = p.events.length;
        const s = [...p.pool.server.sessions][0];
        const readBefore = s.socket.bytesRead;
        m.c.socket.write(text);
        // A TCP socket reads into the shared buffer: 4 KB at most per read, and none once paused (past 1 KB held), so
        // a few KB are held when the close comes and the rest is still in the kernel. A TLS socket reads on through
        // 'data' (16 KB records): half the text is held.
        const held = await untilHeld(s, secure ? text.length / 2 : 1024);
        assert.ok(held > 0, 'lines are held when the close comes');
        if (how === 'fin') m.c.socket.end();
        else if (how === 'rst') { if (secure) m.c.socket.destroy(); else m.c.socket.resetAndDestroy(); }
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
        // The shares the pool read: over TCP, the whole lines in the bytes it read (a reset discards what the kernel
        // still held unread; a FIN is read after all of it); over TLS (bytesRead counts records) all of them, as before.
        const read = secure ? N : (text.slice(0, s.socket.bytesRead - readBefore).match(/\n/g) ?? []).length;
        assert.ok(read > 0 && read <= N);
        if (how === 'fin') assert.equal(read, N, 'a FIN is read after every line before it');
        assert.equal(recorded, read, `every share read is recorded (${recorded}/${read} read of ${N} sent, held ${held})`);
        const srv = p.pool.server as unknown as { perIp: Map<string, number>; stats: { connections: number } };
        assert.equal(srv.perIp.size, 0);
        assert.equal(srv.stats.connections, 0);
      } finally {
        if (!stopped) await p.pool.stop(50);
      }
    });
  }
}

// A close decided while handling a line (here: too many invalid shares) stopped the framer at once, so the lines
// read after the offending one were dropped unhandled; with a block among them, the block was lost.
test('a close decided inside a line (too many invalid shares): the shares read after it are handled and recorded', async () => {
  const D = FLOOD_DIFFICULTY;
  const { pool, port, shareLog } = await startTestPool(new StubNode(), {
    readTurnBudgetMs: 0,
    messagesPerSecond: 20, messageBurst: 40, readLinesPerSecond: 1e9,
    vardiff: { ...DEFAULT_STRATUM_OPTIONS.vardiff, minDifficulty: D, maxDifficulty: D },
    initialDifficulty: D,
    ban: { ...DEFAULT_STRATUM_OPTIONS.ban, maxRejects: 5, minRejectRatio: 0.5 },
  });
  const accepted: string[] = [];
  shareLog.onShare((e) => { if (e.outcome === 'accepted') accepted.push(e.worker); });
  try {
    const m = await floodMiner(new LineClient(port, '127.0.3.2'));
    const lines = m.shares(21).split('\n').filter((l) => l.length > 0);
    // One valid share, five duplicates of it (invalid: the fifth closes the connection), then twenty valid shares.
    const dup = (i: number) => lines[0].replace('"id":1000', `"id":${2000 + i}`);
    const text = [lines[0], dup(1), dup(2), dup(3), dup(4), dup(5), ...lines.slice(1)].join('\n') + '\n';
    const s = [...pool.server.sessions][0];
    const readBefore = s.socket.bytesRead;
    m.c.socket.write(text);
    await m.c.waitClose(5000);
    assert.equal(s.socket.bytesRead - readBefore, text.length, 'the pool read every line before it closed');
    assert.match(s.closeReason, /^abuse: 5 invalid shares/);
    assert.equal(pool.server.stats.abuseClosed, 1, 'closed for abuse once');
    assert.deepEqual(s.counts, { accepted: 21, duplicate: 5 });
    assert.equal(accepted.length, 21, 'every valid share read is recorded');
  } finally {
    await pool.stop(50);
  }
});
