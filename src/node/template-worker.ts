// The template thread's side (template-thread.ts): reads a getblocktemplate reply from the buffer it shares with
// the event loop and answers with the template, its prepared transactions' bytes handed over (transferred).
import { parentPort } from 'node:worker_threads';
import { readTemplateReply } from './template-reply.ts';

interface Request { id: number; status: number; shared: SharedArrayBuffer; size: number }

parentPort!.on('message', (m: Request) => {
  const reading = readTemplateReply(m.status, new Uint8Array(m.shared, 0, m.size), true);
  const prepared = reading.ok ? reading.template.prepared : undefined;
  // Each branch hash is a view into this thread's 8 KB Buffer pool, which cloning would copy whole: 32 bytes each.
  if (prepared) prepared.branch = prepared.branch.map((h) => Buffer.from(new Uint8Array(h).buffer));
  const bytes = prepared?.bytes;
  parentPort!.postMessage({ id: m.id, reading }, bytes && bytes.byteLength > 0 ? [bytes.buffer as ArrayBuffer] : []);
});
