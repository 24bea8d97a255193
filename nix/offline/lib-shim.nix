# nixpkgs' lib on an old Nix: lib.fileset needs builtins.readFileType (Nix
# 2.18 or later); Debian's nix-bin is older. Re-import the whole lib with a
# builtins that has it, derived from builtins.readDir. Used only by
# nix/check.py's optional checks, never by the flake.
libDir:
let
  shimmedBuiltins = builtins // {
    readFileType = path: (builtins.readDir (dirOf path)).${baseNameOf path};
  };
  scope = {
    builtins = shimmedBuiltins;
    import = importWithShim;
  };
  importWithShim = path: builtins.scopedImport scope path;
in
importWithShim libDir
