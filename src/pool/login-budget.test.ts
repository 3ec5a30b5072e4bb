import { describe, expect, it } from 'vitest';
import { LoginBudget } from './login-budget.js';

/** A budget on a hand-driven clock; `checkPhase()` runs what setImmediate would run at the end of a loop iteration. */
function setup(budgetMs: number) {
  let now = 0;
  let deferred: Array<() => void> = [];
  const budget = new LoginBudget(budgetMs, () => now, (fn) => deferred.push(fn));
  const ran: string[] = [];
  /** A task that takes `ms` of the clock. */
  const task = (name: string, ms: number) => () => {
    ran.push(name);
    now += ms;
  };
  const checkPhase = () => {
    const fns = deferred;
    deferred = [];
    for (const fn of fns) fn();
  };
  return { budget, ran, task, checkPhase, pending: () => deferred.length, advance: (ms: number) => (now += ms) };
}

describe('LoginBudget', () => {
  it('runs login work at once while the turn has budget left, then defers the rest to later turns in order', () => {
    const { budget, ran, task, checkPhase } = setup(2);
    budget.run(task('a', 1));
    budget.run(task('b', 1.5)); // 1 ms used: still within the turn's 2 ms, runs (and overruns)
    budget.run(task('c', 1)); // 2.5 ms used: waits
    budget.run(task('d', 1));
    expect(ran).toEqual(['a', 'b']);
    expect(budget.queued).toBe(2);
    expect(budget.deferredTotal).toBe(2);
    // This iteration's check phase ends the turn without running more: its budget is spent.
    checkPhase();
    expect(ran).toEqual(['a', 'b']);
    // Next iteration: poll-phase work that arrives while tasks wait queues behind them (first come, first served).
    budget.run(task('e', 0.1));
    expect(ran).toEqual(['a', 'b']);
    checkPhase(); // fresh turn: c and d (2 ms) fill it
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
    checkPhase();
    expect(ran).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(budget.queued).toBe(0);
  });

  it('gives every loop iteration a fresh budget and needs no callback once idle', () => {
    const { budget, ran, task, checkPhase, pending, advance } = setup(2);
    budget.run(task('a', 1.9));
    expect(pending()).toBe(1); // the turn ends in this iteration's check phase
    checkPhase();
    expect(pending()).toBe(0);
    advance(100);
    budget.run(task('b', 1.9));
    budget.run(task('c', 0.5)); // 1.9 ms into the new turn: still room
    expect(ran).toEqual(['a', 'b', 'c']);
    checkPhase();
    expect(pending()).toBe(0);
  });

  it('runs everything at once with budget 0, and a reload to 0 lets the queue run at the next turn end', () => {
    const unlimited = setup(0);
    for (let i = 0; i < 100; i++) unlimited.budget.run(unlimited.task(`t${i}`, 5));
    expect(unlimited.ran.length).toBe(100);
    expect(unlimited.pending()).toBe(0);

    const { budget, ran, task, checkPhase } = setup(1);
    budget.run(task('a', 5));
    budget.run(task('b', 5));
    budget.run(task('c', 5));
    expect(ran).toEqual(['a']);
    budget.setBudget(0);
    checkPhase();
    expect(ran).toEqual(['a', 'b', 'c']);
  });

  it('keeps order through many turns with a long queue', () => {
    const { budget, ran, task, checkPhase } = setup(1);
    for (let i = 0; i < 3000; i++) budget.run(task(String(i), 0.5));
    let turns = 0;
    while (budget.queued > 0 && turns < 10_000) {
      checkPhase();
      turns++;
    }
    expect(ran).toEqual(Array.from({ length: 3000 }, (_, i) => String(i)));
    expect(turns).toBeGreaterThanOrEqual(1500); // two 0.5 ms tasks per 1 ms turn
  });
});
