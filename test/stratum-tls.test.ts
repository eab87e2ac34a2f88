import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { Pool } from '../src/pool/pool.ts';
import { InProcessShareLog } from '../src/shares/events.ts';
import { DEFAULT_STRATUM_OPTIONS } from '../src/stratum/options.ts';
import { LineClient } from './helpers/line-client.ts';
import { StubNode } from './helpers/stub-node.ts';
import { REGTEST_ADDRESS } from './helpers/pool.ts';

test('Stratum over TLS with the certificate and key from config', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hashhub-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  } catch (e) {
    t.skip(`openssl unavailable: ${(e as Error).message}`);
    return;
  }
  const cert = readFileSync(path.join(dir, 'cert.pem'));
  const pool = new Pool(new StubNode(), {
    network: 'regtest', payoutAddress: REGTEST_ADDRESS, poolTag: '/t/', requireAddressAccounts: false,
    stratum: { ...DEFAULT_STRATUM_OPTIONS, host: '127.0.0.1', port: 0, tls: { port: 0, cert, key: readFileSync(path.join(dir, 'key.pem')) } },
    templates: { pollMs: 1000, longpoll: false },
    blocks: { journalDir: null },
  }, new InProcessShareLog(), pino({ level: 'silent' }));
  const { tlsPort } = await pool.start();
  try {
    assert.ok(tlsPort);
    const socket = tls.connect({ host: '127.0.0.1', port: tlsPort!, ca: cert, servername: 'localhost' });
    const c = new LineClient(socket);
    await c.connected();
    assert.equal(socket.authorized, true, 'certificate verified against the configured one');
    c.send('{"id":1,"method":"mining.subscribe","params":["tls-test"]}\n{"id":2,"method":"mining.authorize","params":["acct.w","x"]}\n');
    await c.waitFor((m) => m.method === 'mining.notify').catch(() => undefined);
    const lines = c.messages;
    assert.equal(lines[0].id, 1);
    assert.ok(lines.some((l) => l.id === 2 && l.result === true));
    assert.ok(lines.some((l) => l.method === 'mining.notify'));
    c.close();
    // A plain-TCP client on the TLS port fails the handshake without hurting the server.
    const net = await import('node:net');
    const plain = net.connect(tlsPort!, '127.0.0.1');
    plain.on('error', () => {});
    plain.write('{"id":1,"method":"mining.subscribe","params":[]}\n');
    await new Promise((r) => plain.once('close', r));
  } finally {
    await pool.stop(100);
  }
});
