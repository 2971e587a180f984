export { main, buildProgram } from './program.js';
export type { CliIo } from './program.js';
