import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';

// BENCHMARKS.md is written by several benchmark scripts; each owns one section between markers and replaces only
// that, so `npm run bench:stratum` does not erase what `npm run bench` measured (and the other way round).

const FILE = 'BENCHMARKS.md';

/** Machine, date and commit, the header every section carries. */
export function provenance(command: string): string[] {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim()) commit += ' (with uncommitted changes)';
  } catch { /* not a git checkout */ }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return [
    `- Date: ${new Date().toISOString()}; commit ${commit}; command: \`${command}\``,
    `- Machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}; load average at start ${os.loadavg()[0].toFixed(2)}`,
  ];
}

/** Replace (or append) the section `name` of BENCHMARKS.md with `lines`. */
export function writeSection(name: string, lines: string[]): void {
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const body = [begin, ...lines, end].join('\n');
  let text = existsSync(FILE) ? readFileSync(FILE, 'utf8') : '# hashhub benchmarks\n';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a !== -1 && b > a) text = text.slice(0, a) + body + text.slice(b + end.length);
  else text = text.replace(/\n*$/, '\n\n') + body + '\n';
  writeFileSync(FILE, text);
}
