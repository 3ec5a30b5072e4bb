/**
 * How much of each event-loop turn login work may take (client startup packets and password messages, the
 * SCRAM steps): `budgetMs` per turn, the rest waits for a later turn. A login storm then cannot make one turn
 * long: the clients already logged in get their reads and writes served between slices, at the price of
 * logins waiting a few turns. Work runs at once while the turn's budget lasts and nothing is queued (first
 * come, first served); queued work runs in a setImmediate callback, which Node runs after the poll phase, so
 * the I/O of established sessions is handled before each slice. No timer: the clock is read per task.
 *
 * A turn starts with its first login task and ends in the check phase (setImmediate) of the same loop
 * iteration; a queued task runs in a later iteration's check phase, after that iteration's poll phase.
 * Tasks must not throw (ClientSession.onData is its own error boundary).
 */
export class LoginBudget {
  private readonly queue: Array<(() => void) | undefined> = [];
  private head = 0;
  /** Clock at the start of the current turn's login work; -1 between turns. */
  private turnStart = -1;
  private drainScheduled = false;
  /** Tasks that had to wait for a later turn, since start. */
  deferredTotal = 0;

  /** `budgetMs` 0: no limit, every task runs at once. */
  constructor(
    private budgetMs: number,
    private readonly clock: () => number = () => performance.now(),
    private readonly defer: (fn: () => void) => void = setImmediate,
  ) {}

  /** A reload changed the budget; 0 lets what is queued run at the next turn's end. */
  setBudget(budgetMs: number): void {
    this.budgetMs = budgetMs;
  }

  /** Tasks waiting for a turn with budget left. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Run `task` now if this turn has budget left and nothing is waiting, else after the tasks already waiting. */
  run(task: () => void): void {
    if (this.queued === 0 && this.withinBudget()) {
      task();
      return;
    }
    this.queue.push(task);
    this.deferredTotal++;
    this.scheduleDrain();
  }

  private withinBudget(): boolean {
    if (this.budgetMs === 0) return true;
    const now = this.clock();
    if (this.turnStart < 0) {
      this.turnStart = now;
      this.scheduleDrain(); // ends the turn in this iteration's check phase
      return true;
    }
    return now - this.turnStart < this.budgetMs;
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    this.defer(() => this.drain());
  }

  /** Check phase: queued work while the turn's budget lasts, then the turn ends. */
  private drain(): void {
    this.drainScheduled = false;
    try {
      while (this.queued > 0 && this.withinBudget()) {
        const task = this.queue[this.head] as () => void;
        this.queue[this.head++] = undefined;
        task();
      }
    } finally {
      if (this.queued === 0) {
        this.queue.length = 0;
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.turnStart = -1;
      if (this.queued > 0) this.scheduleDrain();
    }
  }
}
