(function executeRule(current, previous /*null when async*/) {

    // Async, on insert of an incident's comment or work note (see the rule's condition). Only the
    // entry's identity is sent: the connector reads the journal itself, and the text of a work
    // note never leaves ServiceNow by this path.
    new MimConnectorPush().notifyJournal(current);

})(current, previous);
