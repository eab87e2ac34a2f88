/**
 * One copy of a string many share events carry (an account's name, a worker's, a session's, a firmware's user
 * agent) instead of one per parse: each parse makes a new string, and the same few come back thousands of times.
 * The copy kept is a flat one: a parsed value is often a slice of the whole line it came from (a submit line, a
 * spool line), and V8 keeps a slice's whole parent alive. Only values up to maxLength, and at most `max` of them
 * (cleared when full), so a peer sending a new value each time costs nothing lasting.
 */
export class InternedStrings {
  private readonly strings = new Map<string, string>();

  constructor(
    private readonly max: number,
    private readonly maxLength = 128,
  ) {}

  /** `s`, or the equal string kept before. */
  readonly get = (s: string): string => {
    if (s.length > this.maxLength) return s;
    const hit = this.strings.get(s);
    if (hit !== undefined) return hit;
    if (this.strings.size >= this.max) this.strings.clear();
    const flat = JSON.parse(JSON.stringify(s)) as string; // a new string of its own: no slice of the line
    this.strings.set(flat, flat);
    return flat;
  };
}
