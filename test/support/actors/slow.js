// An actor type loaded with --actors in integration tests: replies after the delay it is asked for,
// which lets a test pass an ask's deadline on a real node.
export default {
  name: 'slow',
  durability: 'sync',
  initialState: () => ({ handled: 0 }),
  validate(message) {
    return typeof message === 'object' && message !== null && Number.isFinite(message.delayMs) ? undefined : 'expected {"delayMs": n}';
  },
  async handle(state, message, ctx) {
    await new Promise((resolve) => setTimeout(resolve, message.delayMs));
    ctx.reply({ slept: message.delayMs });
    return { handled: state.handled + 1 };
  },
};
