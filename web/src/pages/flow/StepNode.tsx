// One step on the canvas: a card with a type badge (text, not colour alone), the step's name and
// its trigger (route, schedule or topics). Loaded with the canvas only.
import { memo } from "react";
import { Handle, Position } from "@xyflow/react";
import type { NodeProps } from "@xyflow/react";

import { stepTrigger, typeBadge, typeTitle } from "./graph";
import type { StepFlowNode } from "./graph";

function StepNodeView({ data, selected }: NodeProps<StepFlowNode>) {
  const { step, kind } = data;
  const trigger = stepTrigger(step);
  return (
    <div className={`step-node step-${kind}${selected ? " is-selected" : ""}`} title={typeTitle(step.type)}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <div className="step-node-head">
        <span className={`step-badge step-badge-${kind}`}>{typeBadge(step.type)}</span>
        <span className="step-name">{step.name}</span>
      </div>
      {trigger ? <div className="step-trigger">{trigger}</div> : null}
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
}

export const StepNode = memo(StepNodeView);
