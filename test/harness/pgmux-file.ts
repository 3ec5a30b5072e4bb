/**
 * startPgmux also returns the YAML file's path (for tests that assert what is, or is not, in it);
 * these names remain for the tests that use them.
 */
import { startPgmux, type TestPgmux, type TestPgmuxOptions } from './pgmux.js';

export type TestPgmuxWithFile = TestPgmux;

export function startPgmuxWithConfigFile(options: TestPgmuxOptions): Promise<TestPgmuxWithFile> {
  return startPgmux(options);
}
