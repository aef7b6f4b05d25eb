// A module that cannot be loaded, as one with a broken dependency.
throw new Error('counter plugin needs LEDGER_URL');
