/** One fault to inject into a protocol double, for the requests `match` picks. */
export interface FaultRuleOf<Request, Fault> {
  fault: Fault;
  /** Which requests count (default: every one). */
  match?: (r: Request) => boolean;
  /** Matching requests to let through first: `skip: 2` hits the 3rd. Default 0. */
  skip?: number;
  /** How many requests it hits. Default 1. */
  times?: number;
}

/** The doubles' faults: rules are checked in the order added, and one request takes at most one fault. */
export class FaultRules<Request, Fault> {
  private rules: (FaultRuleOf<Request, Fault> & { seen: number; hit: number })[] = [];

  add(rule: FaultRuleOf<Request, Fault>): void {
    this.rules.push({ ...rule, seen: 0, hit: 0 });
  }

  clear(): void {
    this.rules = [];
  }

  /** The fault this request takes, if any. */
  take(r: Request): Fault | undefined {
    for (const rule of this.rules) {
      if (rule.match && !rule.match(r)) continue;
      rule.seen++;
      if (rule.seen <= (rule.skip ?? 0)) continue;
      if (rule.hit >= (rule.times ?? 1)) continue;
      rule.hit++;
      return rule.fault;
    }
    return undefined;
  }
}
