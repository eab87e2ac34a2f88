import { Writable } from 'node:stream';
import { pino } from 'pino';

/** A pino logger at debug level whose lines land in `lines` (parsed). */
export function captureLogger(): { logger: pino.Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString('utf8')) as { level: number; msg: string });
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}
