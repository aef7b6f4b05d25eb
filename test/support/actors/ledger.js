// An actor type loaded with --actors by the chaos tests: a counter that also keeps the id of every
// message it applied, so a test that finds a wrong total can name the tells that were lost or doubled.
export default {
  name: 'ledger',
  durability: 'sync',
  initialState: () => ({ value: 0, ids: [] }),
  validate(message) {
    if (typeof message !== 'object' || message === null) return 'expected {"add": n, "id": s} or {"get": true}';
    if (message.get === true) return undefined;
    return Number.isFinite(message.add) && typeof message.id === 'string' ? undefined : 'expected {"add": n, "id": s} or {"get": true}';
  },
  handle(state, message, ctx) {
    if (message.get === true) {
      ctx.reply(state);
      return state;
    }
    return { value: state.value + message.add, ids: [...state.ids, message.id] };
  },
};
