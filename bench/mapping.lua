-- The benchmark mapping, shared by sluice's inline processor (bench/lua_map.yaml)
-- and the plain-LuaJIT peer (bench/peer_map.lua): decode, add two fields, re-encode.
this.id = uuid_v4()
this.processed = true
