-- keywarden schema v5: every stored instant is canonical (src/store/instants.ts): 24 characters,
-- years 0000-9999, so that text order is time order in SQL and in code alike. Before v5 an
-- expires_at past 9999 could be stored as `+010000-…`, which SQL compared as earlier than any
-- year (expired: outside the cap and the active listings) while verification parsed it as the
-- far future (valid). Such a key was meant to work for ever: it now expires at the latest instant
-- keywarden keeps, so it works and counts against its owner's cap, in SQL and in code.
UPDATE api_keys SET expires_at = '9999-12-31T23:59:59.000Z'
  WHERE expires_at GLOB '+*';
