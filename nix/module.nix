# services.ferry: Ferry as a hardened systemd service.
{ self }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.ferry;
  inherit (lib) mkEnableOption mkIf mkOption types literalExpression;

  defaultDataDir = "/var/lib/ferry";
  # A data directory under /var/lib is a systemd StateDirectory (created and
  # owned by systemd); anywhere else it is created by tmpfiles and opened up
  # with ReadWritePaths.
  stateDirectory = lib.removePrefix "/var/lib/" cfg.dataDir;
  underVarLib = lib.hasPrefix "/var/lib/" cfg.dataDir && stateDirectory != "";

  listen =
    if lib.hasInfix ":" cfg.listenAddress
    then "[${cfg.listenAddress}]:${toString cfg.port}"
    else "${cfg.listenAddress}:${toString cfg.port}";
  privilegedPort = cfg.port < 1024;
in
{
  options.services.ferry = {
    enable = mkEnableOption "Ferry, a self-hosted drop box for notes and files";

    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.ferry;
      defaultText = literalExpression "ferry.packages.\${pkgs.stdenv.hostPlatform.system}.ferry";
      description = "The Ferry package to run.";
    };

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = "Address to listen on. The default suits a reverse proxy on the same host.";
    };

    port = mkOption {
      type = types.port;
      default = 8080;
      description = "TCP port to listen on.";
    };

    dataDir = mkOption {
      type = types.path;
      default = defaultDataDir;
      description = "Where Ferry keeps its uploads and, unless a database URL is set, its SQLite database.";
    };

    databaseUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "postgres://ferry@localhost/ferry";
      description = ''
        Database URL (`sqlite://…` or `postgres://…`); null means SQLite in
        the data directory. This ends up in the world-readable Nix store: put
        a URL with a password in `databaseUrlFile` instead.
      '';
    };

    databaseUrlFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/ferry-database-url";
      description = ''
        File holding the database URL, read through systemd's LoadCredential
        (so it may stay readable by root only) and passed to Ferry as
        FERRY_DATABASE_URL_FILE.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { FERRY_MAX_UPLOAD_BYTES = "1073741824"; RUST_LOG = "ferry=debug"; };
      description = "Extra environment variables for the service (see `ferry print-default-config`).";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the port in the firewall.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [{
      assertion = cfg.databaseUrl == null || cfg.databaseUrlFile == null;
      message = "services.ferry: set databaseUrl or databaseUrlFile, not both.";
    }];

    users.users.ferry = {
      isSystemUser = true;
      group = "ferry";
      home = cfg.dataDir;
    };
    users.groups.ferry = { };

    systemd.tmpfiles.rules = lib.optional (!underVarLib) "d ${cfg.dataDir} 0750 ferry ferry - -";

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;

    systemd.services.ferry = {
      description = "Ferry drop box";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "postgresql.service" ];

      environment = {
        FERRY_LISTEN = listen;
        FERRY_DATA_DIR = cfg.dataDir;
      }
      // lib.optionalAttrs (cfg.databaseUrl != null) { FERRY_DATABASE_URL = cfg.databaseUrl; }
      // cfg.environment;

      serviceConfig = {
        Type = "exec";
        ExecStart = "${lib.getExe cfg.package} serve";
        User = "ferry";
        Group = "ferry";
        Restart = "on-failure";
        RestartSec = 5;
        TimeoutStopSec = 30;
        WorkingDirectory = cfg.dataDir;
        UMask = "0027";

        # The credential is read from systemd's per-service credentials
        # directory (%d), so the source file can stay private to root.
        LoadCredential = lib.optional (cfg.databaseUrlFile != null) "database-url:${cfg.databaseUrlFile}";
        Environment = lib.optional (cfg.databaseUrlFile != null) "FERRY_DATABASE_URL_FILE=%d/database-url";

        StateDirectory = lib.optional underVarLib stateDirectory;
        StateDirectoryMode = "0750";
        ReadWritePaths = lib.optional (!underVarLib) cfg.dataDir;

        # Hardening: no privileges, a read-only system, no kernel or device
        # access, IPv4/IPv6/Unix sockets only, the @system-service syscalls.
        CapabilityBoundingSet = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
        AmbientCapabilities = lib.optional privilegedPort "CAP_NET_BIND_SERVICE";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = !privilegedPort;
        DevicePolicy = "closed";
        ProtectHostname = true;
        ProtectClock = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RemoveIPC = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged" ];
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
