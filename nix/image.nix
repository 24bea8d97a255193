# A layered OCI/Docker image that meets nix/image-contract.json: Ferry, CA
# certificates, tzdata and a passwd/group naming the ferry user; no shell and
# no package manager. Only builtins are used for the contract mapping so that
# nix/check.py can evaluate this file with stand-ins for `pkgs` and compare the
# resulting image config with the contract.
{ pkgs
, contract
, ferry
, architecture
, version
, revision
, created
, description
, repository
, license
}:
let
  uid = toString contract.uid;
  gid = toString contract.gid;
  seconds = s: s * 1000000000; # Docker wants durations in nanoseconds

  # passwd, group and nsswitch.conf with root, nobody and the ferry user.
  nss = pkgs.dockerTools.fakeNss.override {
    extraPasswdLines = [ "${contract.user}:x:${uid}:${gid}:Ferry:${contract.dataDir}:/noshell" ];
    extraGroupLines = [ "${contract.group}:x:${gid}:" ];
  };

  # tzdata where libc and the time crates look for it.
  zoneinfo = pkgs.runCommand "ferry-image-zoneinfo" { } ''
    mkdir -p $out/usr/share
    ln -s ${pkgs.tzdata}/share/zoneinfo $out/usr/share/zoneinfo
  '';

  # The data directory, relative because the commands run in the image root.
  dataDir = "." + contract.dataDir;
in
pkgs.dockerTools.buildLayeredImage {
  name = "ferry";
  tag = version;
  inherit architecture created;

  # /bin/ferry, /etc/{passwd,group,nsswitch.conf}, /etc/ssl/certs/…,
  # /usr/share/zoneinfo and their runtime closure (glibc, libgcc).
  contents = [ ferry nss pkgs.dockerTools.caCertificates zoneinfo ];

  fakeRootCommands = ''
    mkdir -p ${dataDir} ./tmp
    chown ${uid}:${gid} ${dataDir}
    chmod 0750 ${dataDir}
    chmod 1777 ./tmp
  '';

  config = {
    User = "${uid}:${gid}";
    Entrypoint = contract.entrypoint;
    Cmd = contract.cmd;
    Env = map (name: "${name}=${contract.env.${name}}") (builtins.attrNames contract.env);
    WorkingDir = contract.dataDir;
    ExposedPorts = { "${toString contract.port}/tcp" = { }; };
    Volumes = { "${contract.dataDir}" = { }; };
    StopSignal = contract.stopSignal;
    Healthcheck = {
      Test = contract.healthcheck.test;
      Interval = seconds contract.healthcheck.intervalSeconds;
      Timeout = seconds contract.healthcheck.timeoutSeconds;
      StartPeriod = seconds contract.healthcheck.startPeriodSeconds;
      Retries = contract.healthcheck.retries;
    };
    Labels = {
      "org.opencontainers.image.title" = "ferry";
      "org.opencontainers.image.description" = description;
      "org.opencontainers.image.version" = version;
      "org.opencontainers.image.revision" = revision;
      "org.opencontainers.image.created" = created;
      "org.opencontainers.image.source" = repository;
      "org.opencontainers.image.licenses" = license;
    };
  };
}
