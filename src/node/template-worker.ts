// The template thread's side (template-thread.ts): reads a getblocktemplate reply from the buffer it shares with
// the event loop and answers with the template, its prepared transactions' bytes handed over (transferred).
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { readTemplateReply } from './template-reply.ts';
import { TEMPLATE_THREAD_NICE } from './template-thread.ts';

// Below the event loop that answers miners (nice +10: about a tenth of a core they share when both want it). A
// template can wait a few milliseconds; an answer should not: with the pool pinned to one core, this thread's
// ~20-50 ms of work per template otherwise takes half the core from the share path while it runs. On Linux a
// thread's own id names it alone to setpriority (man 2 setpriority); elsewhere it keeps the process's priority.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0 && tid !== process.pid) setPriority(tid, Math.min(19, getPriority(tid) + TEMPLATE_THREAD_NICE));
} catch {
  // no /proc/thread-self (not Linux), or not allowed: the thread keeps the process's priority
}

interface Request { id: number; status: number; shared: SharedArrayBuffer; size: number }

parentPort!.on('message', (m: Request) => {
  const reading = readTemplateReply(m.status, new Uint8Array(m.shared, 0, m.size), true);
  const prepared = reading.ok ? reading.template.prepared : undefined;
  // Each branch hash is a view into this thread's 8 KB Buffer pool, which cloning would copy whole: 32 bytes each.
  if (prepared) prepared.branch = prepared.branch.map((h) => Buffer.from(new Uint8Array(h).buffer));
  const bytes = prepared?.bytes;
  parentPort!.postMessage({ id: m.id, reading }, bytes && bytes.byteLength > 0 ? [bytes.buffer as ArrayBuffer] : []);
});
