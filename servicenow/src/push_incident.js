(function executeRule(current, previous /*null when async*/) {

    // Async, on insert and update of incident: tell the mim-connector which version now exists.
    // The connector reads the incident itself; this only spares it waiting for its next poll.
    new MimConnectorPush().notifyIncident(current, current.operation());

})(current, previous);
