-- Argo CD health check for appstack.dev/AppStack (resource.customizations.health.appstack.dev_AppStack).
-- Reads only what the operator writes: status.observedGeneration and the
-- Ready / Progressing / Degraded conditions.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the AppStack operator to report"
  return hs
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "the operator has not yet reported generation " .. tostring(generation)
  return hs
end

local degraded = condition("Degraded")
local ready = condition("Ready")
local progressing = condition("Progressing")

-- Degraded first: a stack can be Ready (the running children serve) while a
-- change to it is refused or a store fails.
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "Degraded") .. ": " .. said(degraded, "")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = said(ready, "ready")
  return hs
end

hs.status = "Progressing"
hs.message = said(progressing, said(ready, "not ready yet"))
return hs
