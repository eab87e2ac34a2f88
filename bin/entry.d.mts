/** Types of entry.mjs (plain JS: bin/ runs before any TypeScript loader). */
export declare const BUILD_STAMP: string;
export type Entry = { kind: 'dist'; file: string } | { kind: 'src'; file: string; why: string | null };
export declare function sourcesHash(srcDir: string): string;
export declare function chooseEntry(root: string): Entry;
