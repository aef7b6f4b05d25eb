/**
 * A module for the js engine (contract in src/engines/engine.ts). Keeps a running total; the
 * snapshot is {total}. config.step multiplies each number; config.hangOnStop makes stop() never end;
 * config.badSnapshot makes the snapshot a state that is not JSON.
 * Message data: a number is added; "boom" fails the batch (state unchanged); "crash" throws outside
 * any call (an uncaught error in the worker); "exit" calls process.exit(7).
 */
export default function create(config, checkpoint) {
  const step = config?.step ?? 1;
  let total = checkpoint?.total ?? 0;
  console.log(`counter: starting at ${total}`);
  return {
    async process(messages) {
      const outputs = [];
      let t = total;
      for (const m of messages) {
        if (m.data === 'boom') throw new Error(`boom at offset ${m.offset}`);
        if (m.data === 'crash') {
          setImmediate(() => {
            throw new Error('counter crashed outside a call');
          });
          return [];
        }
        if (m.data === 'exit') process.exit(7);
        t += m.data * step;
        outputs.push({ data: t, time: m.time });
      }
      total = t;
      return outputs;
    },
    snapshot() {
      return config?.badSnapshot ? { total: BigInt(total) } : { total };
    },
    stop() {
      console.error('counter: stopping');
      return config?.hangOnStop ? new Promise(() => {}) : undefined;
    },
  };
}
