# The few functions of nixpkgs' lib that Ferry's flake calls, written to the
# same contracts (lib/attrsets.nix, lib/lists.nix, lib/strings.nix,
# lib/meta.nix, lib/fileset).
let
  inherit (builtins) attrNames filter head isList isPath listToAttrs map pathExists replaceStrings;
  genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
  getName = x: (builtins.parseDrvName (x.name or x)).name;
  getBin = pkg: pkg.bin or pkg.out or pkg;
  requirePath = what: p:
    if !isPath p then throw "lib.fileset.${what}: expected a path, got ${builtins.typeOf p}"
    else if !pathExists p then throw "lib.fileset.${what}: ${toString p} does not exist"
    else p;
in
{
  inherit genAttrs getBin getName attrNames;
  isDerivation = x: builtins.isAttrs x && (x.type or null) == "derivation";
  inherit (builtins) mapAttrs;
  findFirst = pred: default: list:
    let found = filter pred list; in if found == [ ] then default else head found;
  getExe = x: "${getBin x}/bin/${x.meta.mainProgram or (getName x)}";
  escapeShellArg = arg: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
  licenses.asl20 = { spdxId = "Apache-2.0"; shortName = "asl20"; free = true; };
  fileset = {
    # A file set here is a list of existing paths; toSource copies the root
    # (the real one copies only the set; nix/check.py's "source" and "deep"
    # steps check that part).
    unions = sets:
      if !isList sets then throw "lib.fileset.unions: expected a list"
      else builtins.concatLists (map (s: if isList s then s else [ (requirePath "unions" s) ]) sets);
    toSource = { root, fileset }:
      assert isList fileset || isPath fileset;
      builtins.path { path = requirePath "toSource" root; name = "source"; };
  };
}
