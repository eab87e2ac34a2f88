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
import tls from 'node:tls';
import type { StratumSession } from '../src/stratum/session.ts';
import { floodMiner, floodPool } from './helpers/flood.ts';
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
        m.c.socket.write(text);
        const s = [...p.pool.server.sessions][0];
        const held = await untilHeld(s, text.length / 2);
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
