"""The Compare feature's core: contestants (decoding presets, optionally on another model), the models
loaded beside the loaded one within a memory budget, the blind votes (SQLite) and the ratings from them
(Bradley-Terry, as LMArena). The tab itself is webui/tabs/compare/."""
