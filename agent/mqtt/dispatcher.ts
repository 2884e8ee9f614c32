import type { IPublishPacket } from 'mqtt';

/** Handles one message on a topic its route's filter matched; the packet says whether the broker replayed it retained. */
export type TopicHandler = (topic: string, payload: Buffer, packet?: IPublishPacket) => void;

interface Route {
  readonly filter: string;
  readonly handler: TopicHandler;
}

/** Whether an MQTT topic filter (with `+` and `#`) matches a topic, as a broker matches it. */
export function topicMatches(filter: string, topic: string): boolean {
  const want = filter.split('/');
  const have = topic.split('/');
  for (let i = 0; i < want.length; i++) {
    // Reached with i <= have.length: `a/#` matches `a` as well as everything under it.
    if (want[i] === '#') return true;
    if (i >= have.length) return false;
    if (want[i] !== '+' && want[i] !== have[i]) return false;
  }
  return want.length === have.length;
}

/**
 * The topic → handler table (zigbee2mqtt's bridge and Frigate's dispatcher are the anchors):
 * extensions add the filters they handle, and every message goes to the handlers whose filter
 * matches it. No if-chain knows the topics: an extension that is not started has no routes.
 */
export class TopicDispatcher {
  readonly #routes: Route[] = [];

  /** Adds a route; the function returned removes it again. */
  route(filter: string, handler: TopicHandler): () => void {
    const route = { filter, handler };
    this.#routes.push(route);
    return () => {
      const at = this.#routes.indexOf(route);
      if (at >= 0) this.#routes.splice(at, 1);
    };
  }

  /** The distinct filters routed, in the order first added: what the transport subscribes to. */
  get filters(): string[] {
    return [...new Set(this.#routes.map((route) => route.filter))];
  }

  /** Whether any route still uses the filter (an unsubscribe waits for the last one). */
  routes(filter: string): boolean {
    return this.#routes.some((route) => route.filter === filter);
  }

  /** Hands the message to every matching route; false when none matched. A handler's failure does not reach the others. */
  dispatch(topic: string, payload: Buffer, onError: (filter: string, error: unknown) => void = () => {}, packet?: IPublishPacket): boolean {
    let matched = false;
    for (const route of [...this.#routes]) {
      if (!topicMatches(route.filter, topic)) continue;
      matched = true;
      try {
        route.handler(topic, payload, packet);
      } catch (error) {
        onError(route.filter, error);
      }
    }
    return matched;
  }
}
