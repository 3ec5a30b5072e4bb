/**
 * The faults an operator (or the world) inflicts while the load runs, one at a time: SIGHUP after rewriting the
 * pool sizes in the YAML file, RECONNECT, KILL_CLIENT of a random client, PAUSE then RESUME, and on schedule an
 * upstream restart. Client-side faults are handed out as tokens (workers.ts acts on them), at random intervals,
 * in shuffled rounds so every kind occurs even in a short run.
 */
import type pg from 'pg';
import { sleep } from '../harness/wait.js';
import type { SoakCluster } from './cluster.js';
import type { PgmuxTarget, PoolSizes, Row } from './pgmux-target.js';
import type { Random } from './random.js';
import type { SoakStats } from './stats.js';
import { CLIENT_FAULTS, type ClientFault } from './workers.js';

export const ADMIN_FAULTS = ['SIGHUP (pool sizes changed)', 'RECONNECT', 'KILL_CLIENT', 'PAUSE, then RESUME'] as const;
export const RESTART_FAULT = 'upstream restart (fast)';

/** When the upstream restarts: once in a short run, every 5 minutes in a long one. */
export function restartTimes(durationMs: number): number[] {
  if (durationMs < 6 * 60_000) return [Math.round(durationMs * 0.45)];
  const times: number[] = [];
  for (let t = 150_000; t < durationMs - 60_000; t += 300_000) times.push(t);
  return times;
}

export class Operator {
  private readonly tokens: Array<{ kind: ClientFault; at: number }> = [];
  /** Local ports of clients KILL_CLIENT closed, and when. */
  private readonly killed = new Map<number, number>();
  private readonly restartWindows: Array<{ start: number; end: number }> = [];
  private stopped = false;
  private adminLoop: Promise<void> | undefined;
  private tokenLoop: Promise<void> | undefined;
  /** Admin commands that failed or hung, and the reasons (they fail the run). */
  readonly problems: string[] = [];
  paused = false;

  constructor(
    private readonly rng: Random,
    private readonly cluster: SoakCluster,
    private readonly pgmux: PgmuxTarget,
    private readonly stats: SoakStats,
    private readonly startedAt: number,
    private readonly durationMs: number,
    private readonly boundMs: number,
  ) {}

  start(): void {
    this.adminLoop = this.runAdmin();
    this.tokenLoop = this.runTokens();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([this.adminLoop, this.tokenLoop]);
  }

  takeFault(kinds: readonly ClientFault[]): ClientFault | undefined {
    const now = Date.now();
    while (this.tokens.length > 0 && now - this.tokens[0].at > 10_000) this.tokens.shift();
    const i = this.tokens.findIndex((t) => kinds.includes(t.kind));
    if (i < 0) return undefined;
    return this.tokens.splice(i, 1)[0].kind;
  }

  disconnectExplained(localPorts: readonly number[], since: number): boolean {
    const now = Date.now();
    if (this.cluster.restarting) return true;
    if (this.restartWindows.some((w) => now >= w.start && now <= w.end + 5_000)) return true;
    return localPorts.some((port) => (this.killed.get(port) ?? 0) >= since);
  }

  private async runTokens(): Promise<void> {
    let round: ClientFault[] = [];
    while (!this.stopped) {
      await sleep(this.rng.int(150, 700));
      if (round.length === 0) round = this.rng.shuffle(CLIENT_FAULTS);
      this.tokens.push({ kind: round.pop() as ClientFault, at: Date.now() });
    }
  }

  private async runAdmin(): Promise<void> {
    const restarts = restartTimes(this.durationMs);
    let round: string[] = [];
    await sleep(2_000);
    while (!this.stopped) {
      const elapsed = Date.now() - this.startedAt;
      try {
        if (restarts.length > 0 && elapsed >= restarts[0]) {
          restarts.shift();
          await this.restart();
        } else {
          if (round.length === 0) round = this.rng.shuffle(ADMIN_FAULTS);
          await this.adminFault(round.pop() as string);
        }
      } catch (err) {
        this.problems.push(`${new Date().toISOString()} ${(err as Error).message}`);
        this.stats.onProblem(`admin action failed: ${(err as Error).message}`);
      }
      // Wake up for the restart on time.
      const wait = this.rng.int(1_500, 4_000);
      const until = Date.now() + wait;
      while (!this.stopped && Date.now() < until) await sleep(100);
    }
  }

  private async restart(): Promise<void> {
    const start = Date.now();
    this.stats.fault(RESTART_FAULT);
    try {
      await this.cluster.restart();
    } finally {
      this.restartWindows.push({ start, end: Date.now() });
    }
  }

  /** Runs `fn` on a fresh admin console connection, failing if it takes longer than the bound. */
  private async withAdmin<T>(what: string, fn: (admin: pg.Client) => Promise<T>): Promise<T> {
    const admin = await this.pgmux.admin();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        fn(admin),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`admin console: ${what} took longer than ${this.boundMs} ms`)), this.boundMs))),
      ]);
    } finally {
      clearTimeout(timer);
      await admin.end().catch(() => undefined);
    }
  }

  private async adminFault(kind: string): Promise<void> {
    switch (kind) {
      case 'SIGHUP (pool sizes changed)': {
        const sizes: PoolSizes = { defaultPoolSize: this.rng.int(3, 6), appBPoolSize: this.rng.int(2, 4), minPoolSize: this.rng.int(1, 2) };
        await this.pgmux.reload(sizes);
        break;
      }
      case 'RECONNECT': {
        const target = this.rng.pick(['', ' app', ' app_b']);
        await this.withAdmin('RECONNECT', (a) => a.query(`RECONNECT${target}`));
        break;
      }
      case 'KILL_CLIENT': {
        const done = await this.withAdmin('KILL_CLIENT', async (a) => {
          const clients = ((await a.query('SHOW CLIENTS')).rows as Row[]).filter((r) => r.user === 'app');
          if (clients.length === 0) return false;
          const victim = this.rng.pick(clients);
          this.killed.set(Number(victim.port), Date.now());
          try {
            await a.query(`KILL_CLIENT ${Number(victim.id)}`);
          } catch (err) {
            // It may have left in the meantime.
            if ((err as { code?: string }).code !== '55000') throw err;
          }
          return true;
        });
        if (!done) return;
        break;
      }
      case 'PAUSE, then RESUME': {
        await this.withAdmin('PAUSE', async (a) => {
          this.paused = true;
          try {
            await a.query('PAUSE');
            await sleep(this.rng.int(100, 1_200));
          } finally {
            // RESUME on a connection of its own: it also interrupts a PAUSE that is still waiting.
            await this.pgmux.adminCommand('RESUME');
            this.paused = false;
          }
        });
        break;
      }
      default:
        throw new Error(`unknown admin fault ${kind}`);
    }
    this.stats.fault(kind);
  }
}
