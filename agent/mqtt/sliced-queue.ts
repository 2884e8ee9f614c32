/**
 * Work that arrives in bursts (config/set from a careless or hostile client) handled
 * in short time slices with pauses between them, so that a burst gets a bounded share
 * of the event loop and the frame loop keeps its rate. Beyond `limit` waiting items,
 * new ones go to `overflow` at once: cheaply refused rather than queued without end.
 */
export interface SlicedQueueOptions<T> {
  handle(item: T): void;
  overflow(item: T): void;
  limit: number;
  /** Longest stretch spent handling items before yielding. */
  sliceMs: number;
  /** Pause after a full slice: sliceMs / (sliceMs + pauseMs) is the most of the loop a burst takes. */
  pauseMs: number;
}

export class SlicedQueue<T> {
  private items: T[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  constructor(private readonly options: SlicedQueueOptions<T>) {}

  get waiting(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.waiting >= this.options.limit) {
      this.options.overflow(item);
      return;
    }
    this.items.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    const started = performance.now();
    while (this.waiting > 0 && performance.now() - started < this.options.sliceMs) {
      const item = this.items[this.head]!;
      this.items[this.head++] = undefined as T;
      this.options.handle(item);
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.waiting === 0) {
      this.scheduled = false;
      return;
    }
    this.timer = setTimeout(() => this.drain(), this.options.pauseMs);
  }

  /** Drops what is waiting (the link is closing). */
  clear(): void {
    clearTimeout(this.timer);
    this.items = [];
    this.head = 0;
    this.scheduled = false;
  }
}
