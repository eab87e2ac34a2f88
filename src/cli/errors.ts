/** An expected CLI failure (a bad argument, an API error): printed as one line, no stack, exit code 1. */
export class CliError extends Error {}
