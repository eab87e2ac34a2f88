import net from 'node:net';

/**
 * A port free right now on 127.0.0.1, for a server a test starts, stops or expects refused on a known port. Picked
 * at random below the kernel's ephemeral range (32768-60999 on Linux): tests run two files at a time, and a port
 * from listen(0), released for the child, could meanwhile go to the other file's next listen(0) or outgoing
 * connection (seen: a pool that could not start, "port already in use").
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

function canListen(port: number): Promise<boolean> {
  const s = net.createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
